// Trust policy (bundle-spec/signing.md § 5, v1/policy.schema.json; src/hepbundle/policy.py):
// ordered rules, the first whose namespace glob matches decides; signers are key / x509 /
// sigstore leaves combined by lists, any_of and all_of. Read with yaml-cpp, checked by hand with
// the schema's rules (SpecError naming file, line and field).
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <sstream>
#include <cstring>
#include <set>

#include "sig.hpp"

namespace hepbundle::detail {

namespace {

struct Fail {
  std::exception_ptr ex;
  bool broken;  // a SignatureError: a broken signature beats a mismatch
  std::string message;
};

[[noreturn]] void pick(const std::vector<Fail>& failures) {
  for (const auto& f : failures)
    if (f.broken) std::rethrow_exception(f.ex);
  std::vector<std::string> msgs;
  for (const auto& f : failures)
    if (std::find(msgs.begin(), msgs.end(), f.message) == msgs.end()) msgs.push_back(f.message);
  if (msgs.size() > 1) throw PolicyError(join(msgs, "; "));
  std::rethrow_exception(failures.at(0).ex);
}

template <class F>
void collect(std::vector<Fail>& fails, F&& f) {
  try {
    f();
  } catch (const VerificationError& e) {
    fails.push_back({std::current_exception(), dynamic_cast<const SignatureError*>(&e) != nullptr, e.message()});
  }
}

struct Node {
  virtual ~Node() = default;
  virtual std::vector<Signer> evaluate(const std::string& name, const std::vector<Candidate>& cs) const = 0;
  virtual std::string describe() const = 0;
};
using NodePtr = std::shared_ptr<const Node>;

struct Leaf : Node {
  std::string role;  // empty: any
  virtual const char* kind() const = 0;
  virtual Signer check(const std::string& name, const Candidate& c) const = 0;
  std::vector<Signer> evaluate(const std::string& name, const std::vector<Candidate>& cs) const override {
    std::vector<const Candidate*> mine;
    for (const auto& c : cs)
      if (c.sig.kind == kind() && (role.empty() || c.role == role)) mine.push_back(&c);
    if (mine.empty())
      throw PolicyError(std::string("no ") + kind() + " signature" + (role.empty() ? "" : " with role " + pyrepr(role)) +
                        " (policy requires " + describe() + ")");
    std::vector<Fail> fails;
    for (const Candidate* c : mine) {
      std::vector<Signer> out;
      collect(fails, [&] { out.push_back(check(name, *c)); });
      if (!out.empty()) return out;
    }
    pick(fails);
  }
};

struct AllowKey : Leaf {
  KeyPtr key;
  std::string id;
  const char* kind() const override { return "key"; }
  Signer check(const std::string& name, const Candidate& c) const override {
    if (c.sig.keyHint && !c.sig.keyHint->empty() && "sha256:" + *c.sig.keyHint != id)
      throw PolicyError("signer key sha256:" + *c.sig.keyHint + " (" + c.sig.name + ") is not allowed to sign " + name +
                        "; the policy allows key " + id);
    verifySignatureBytes(key.get(), c.sig.signature, c.sig.payload, c.sig.name);
    return c.info("key", id);
  }
  std::string describe() const override { return "key " + id; }
};

struct AllowX509 : Leaf {
  CaStore store;
  std::vector<std::string> subjects;
  const char* kind() const override { return "x509"; }
  Signer check(const std::string& name, const Candidate& c) const override {
    X509* leaf = c.sig.chain[0].get();
    const std::string dn = dnString(X509_get_subject_name(leaf));
    bool ok = false;
    for (const auto& p : subjects) ok = ok || dnMatches(X509_get_subject_name(leaf), p);
    if (!ok)
      throw PolicyError("signer " + dn + " (" + c.sig.name + ") is not allowed to sign " + name + "; the policy allows subjects " +
                        join(subjects, ", "));
    verifyX509(c, store);
    return c.info("x509", dn, dnString(X509_get_issuer_name(leaf)));
  }
  std::string describe() const override { return "x509 " + join(subjects, " or ") + " under " + store.label; }
};

struct AllowSigstore : Leaf {
  std::string identity, issuer;
  const char* kind() const override { return "sigstore"; }
  Signer check(const std::string& name, const Candidate& c) const override {
    auto [who, claimed] = sigstoreIdentity(c.sig.chain[0].get());
    if (who != identity || claimed != issuer)
      throw PolicyError(c.sig.name + ": sigstore signer " + who + " (issuer " + (claimed.empty() ? "?" : claimed) + ") is not " +
                        identity + " (issuer " + issuer + "): not allowed to sign " + name);
    // the Fulcio chain, SCT and Rekor proofs are not checked here yet: refuse rather than pretend
    throw SignatureError(c.sig.name + ": keyless signatures are not supported by the native library yet",
                         "verify this bundle with the Python hepbundle, or sign it with a key or an X.509 certificate");
  }
  std::string describe() const override { return "sigstore " + identity + " from " + issuer; }
};

struct AnyOf : Node {
  std::vector<NodePtr> children;
  std::vector<Signer> evaluate(const std::string& name, const std::vector<Candidate>& cs) const override {
    std::vector<Fail> fails;
    for (const auto& ch : children) {
      std::vector<Signer> out;
      bool done = false;
      collect(fails, [&] {
        out = ch->evaluate(name, cs);
        done = true;
      });
      if (done) return out;
    }
    pick(fails);
  }
  std::string describe() const override {
    std::vector<std::string> d;
    for (const auto& c : children) d.push_back(c->describe());
    return "any of (" + join(d, "; ") + ")";
  }
};

bool sameSigner(const Signer& a, const Signer& b) {
  return a.kind == b.kind && a.identity == b.identity && a.file == b.file && a.role == b.role && a.signedAt == b.signedAt &&
         a.issuer == b.issuer;
}

struct AllOf : AnyOf {
  std::vector<Signer> evaluate(const std::string& name, const std::vector<Candidate>& cs) const override {
    std::vector<Signer> out;
    for (const auto& ch : children)
      for (const auto& s : ch->evaluate(name, cs)) {
        bool seen = false;
        for (const auto& o : out) seen = seen || sameSigner(o, s);
        if (!seen) out.push_back(s);
      }
    return out;
  }
  std::string describe() const override {
    std::string any = AnyOf::describe();
    return "all of" + any.substr(6);
  }
};

// ---- reading the YAML ---------------------------------------------------------------------

const char* kPem = "-----BEGIN";
const char* kActions[] = {"publish", "alias", "yank"};

struct Reader {
  std::string filename, base;
  // one parse per distinct key text: a trust root names its release key for the bundles and
  // for every catalogue action (decoding an EC key is most of reading a trust root)
  mutable std::map<std::string, std::pair<KeyPtr, std::string>> keyMemo;

  const std::pair<KeyPtr, std::string>& key(const std::string& text) const {
    auto it = keyMemo.find(text);
    if (it != keyMemo.end()) return it->second;
    KeyPtr k = startsWith(text, kPem) ? publicKeyFromPem(text, "inline key") : loadPublicKey(rel(text));
    std::string id = keyId(k.get());
    return keyMemo[text] = {std::move(k), std::move(id)};
  }

  std::string where(const YAML::Node& n) const {
    return filename + ":" + std::to_string(n.Mark().line + 1) + ": ";
  }
  [[noreturn]] void fail(const YAML::Node& n, const std::string& field, const std::string& what) const {
    throw SpecError(where(n) + field + ": " + what);
  }

  // PyYAML's resolvers: a plain scalar that reads as null, bool, int or float is not a string
  static bool plainNonString(const std::string& v) {
    static const std::set<std::string> words = {"", "~", "null", "Null", "NULL", "yes", "Yes", "YES", "no", "No", "NO",
                                                "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON",
                                                "off", "Off", "OFF", ".inf", ".Inf", ".INF", "-.inf", "+.inf", ".nan", ".NaN", ".NAN"};
    if (words.count(v)) return true;
    std::size_t i = (v[0] == '-' || v[0] == '+') ? 1 : 0;
    if (i >= v.size()) return false;
    bool digits = false, dot = false;
    for (std::size_t k = i; k < v.size(); ++k) {
      const char c = v[k];
      if ((c >= '0' && c <= '9') || c == '_') digits = true;
      else if (c == '.' && !dot) dot = true;
      else if ((c == 'e' || c == 'E') && digits && dot) return true;
      else return startsWith(v.substr(i), "0x") || startsWith(v.substr(i), "0b") ? true : false;
    }
    return digits;
  }
  static bool isString(const YAML::Node& n) {
    return n.IsScalar() && (n.Tag() == "!" || n.Tag() == "tag:yaml.org,2002:str" || !plainNonString(n.Scalar()));
  }
  std::string string(const YAML::Node& n, const std::string& field, bool nonEmpty = true) const {
    if (!isString(n)) fail(n, field, describe(n) + " is not of type 'string'");
    if (nonEmpty && n.Scalar().empty()) fail(n, field, "'' should be non-empty");
    return n.Scalar();
  }
  static std::string describe(const YAML::Node& n) {
    if (n.IsScalar()) return isString(n) ? pyrepr(n.Scalar()) : n.Scalar();
    if (n.IsSequence()) return "[…]";
    if (n.IsMap()) return "{…}";
    return "None";
  }
  void keys(const YAML::Node& map, const std::string& field, std::initializer_list<const char*> allowed) const {
    std::set<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      const std::string k = it->first.IsScalar() ? it->first.Scalar() : "?";
      if (!seen.insert(k).second) throw SpecError(where(it->first) + "invalid YAML: duplicate key " + pyrepr(k));
      bool ok = false;
      for (const char* a : allowed) ok = ok || k == a;
      if (!ok) {
        std::vector<std::string> names(allowed.begin(), allowed.end());
        auto close = closeMatches(k, names, 1, 0.6);
        fail(it->first, (field.empty() ? "" : field + ".") + k,
             "unknown key" + (close.empty() ? std::string() : " (did you mean " + pyrepr(close[0]) + "?)"));
      }
    }
  }
  std::vector<std::string> paths(const YAML::Node& n, const std::string& field) const {
    std::vector<std::string> out;
    if (n.IsSequence()) {
      if (n.size() == 0) fail(n, field, "[] should be non-empty");
      for (std::size_t i = 0; i < n.size(); ++i) out.push_back(string(n[i], field + "[" + std::to_string(i) + "]"));
    } else {
      out.push_back(string(n, field));
    }
    return out;
  }
  std::string rel(const std::string& p) const {
    std::string q = p;
    if (q == "~" || startsWith(q, "~/")) q = envOr("HOME") + q.substr(1);
    return realpathOf(absolutePath(q[0] == '/' ? q : base + "/" + q));
  }
  std::string role(const YAML::Node& spec, const std::string& field) const {
    if (!spec["role"]) return "";
    const std::string r = string(spec["role"], field + ".role");
    for (char c : r)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'))
        fail(spec["role"], field + ".role", pyrepr(r) + " does not match '^[A-Za-z0-9_-]+$'");
    return r;
  }

  NodePtr node(const YAML::Node& spec, const std::string& field, int depth) const {
    if (depth > 64) fail(spec, field, "signer expressions nest deeper than 64 levels");
    if (spec.IsSequence()) {
      if (spec.size() == 0) fail(spec, field, "[] should be non-empty");
      auto any = std::make_shared<AnyOf>();
      for (std::size_t i = 0; i < spec.size(); ++i) any->children.push_back(node(spec[i], field + "[" + std::to_string(i) + "]", depth + 1));
      return any;
    }
    if (!spec.IsMap()) fail(spec, field, describe(spec) + " is not valid under any of the given schemas");
    for (const char* op : {"any_of", "all_of"}) {
      if (!spec[op]) continue;
      keys(spec, field, {op});
      const YAML::Node kids = spec[op];
      if (!kids.IsSequence() || kids.size() == 0) fail(kids, field + "." + op, "must be a non-empty list");
      std::shared_ptr<AnyOf> group = std::string(op) == "any_of" ? std::make_shared<AnyOf>() : std::make_shared<AllOf>();
      for (std::size_t i = 0; i < kids.size(); ++i)
        group->children.push_back(node(kids[i], field + "." + op + "[" + std::to_string(i) + "]", depth + 1));
      return group;
    }
    try {
      if (spec["key"]) {
        keys(spec, field, {"key", "role", "name"});
        // name: whose key it is, for display only (policy.schema.json); checked, never used
        if (spec["name"]) string(spec["name"], field + ".name");
        auto leaf = std::make_shared<AllowKey>();
        leaf->role = role(spec, field);
        // a trust root carries its keys inline as PEM; a policy file names key files
        const auto& [k, id] = key(string(spec["key"], field + ".key"));
        leaf->key = k;
        leaf->id = id;
        return leaf;
      }
      if (spec["x509"]) {
        keys(spec, field, {"x509", "role"});
        const YAML::Node x = spec["x509"];
        const std::string f = field + ".x509";
        if (!x.IsMap()) fail(x, f, describe(x) + " is not of type 'object'");
        keys(x, f, {"ca", "ca_dir", "crl", "subject"});
        if (!x["ca"] && !x["ca_dir"]) fail(x, f, "{…} is not valid under any of the given schemas (needs ca or ca_dir)");
        auto leaf = std::make_shared<AllowX509>();
        leaf->role = role(spec, field);
        std::vector<std::string> cas, dirs, crls, pems;
        if (x["ca"])
          for (const auto& p : paths(x["ca"], f + ".ca")) (startsWith(p, kPem) ? pems : cas).push_back(startsWith(p, kPem) ? p : rel(p));
        if (x["ca_dir"]) dirs.push_back(rel(string(x["ca_dir"], f + ".ca_dir", false)));
        if (x["crl"])
          for (const auto& p : paths(x["crl"], f + ".crl")) crls.push_back(rel(p));
        leaf->subjects = x["subject"] ? paths(x["subject"], f + ".subject") : std::vector<std::string>{"*"};
        leaf->store = loadCaStore(cas, dirs, crls, pems);
        return leaf;
      }
      if (spec["sigstore"]) {
        keys(spec, field, {"sigstore", "role"});
        const YAML::Node s = spec["sigstore"];
        const std::string f = field + ".sigstore";
        if (!s.IsMap()) fail(s, f, describe(s) + " is not of type 'object'");
        keys(s, f, {"identity", "issuer", "trust_config"});
        for (const char* k : {"identity", "issuer"})
          if (!s[k]) fail(s, f + "." + k, "required field is missing");
        auto leaf = std::make_shared<AllowSigstore>();
        leaf->role = role(spec, field);
        leaf->identity = string(s["identity"], f + ".identity");
        leaf->issuer = string(s["issuer"], f + ".issuer");
        if (s["trust_config"]) string(s["trust_config"], f + ".trust_config", false);
        return leaf;
      }
    } catch (const SpecError& e) {
      if (startsWith(e.message(), filename + ":")) throw;
      throw SpecError(where(spec) + e.message(), e.hint());
    }
    fail(spec, field, describe(spec) + " is not valid under any of the given schemas");
  }
};

// The event stream checked before the document is built (src/hepbundle/_yaml.py check_events):
// no NUL byte, at most 64 levels deep, and no anchors or aliases (they serve no purpose in a
// policy and would let a small file expand without bound).
struct Guard : YAML::EventHandler {
  std::string file;
  int depth = 0;
  explicit Guard(std::string f) : file(std::move(f)) {}
  std::string at(const YAML::Mark& m) const { return file + ":" + std::to_string(m.line + 1) + ": "; }
  void anchor(const YAML::Mark& m, YAML::anchor_t a) const {
    if (a != YAML::NullAnchor) throw SpecError(at(m) + "anchors are not allowed in this file", "write the value out in full");
  }
  void open(const YAML::Mark& m, YAML::anchor_t a) {
    anchor(m, a);
    if (++depth > 64) throw SpecError(at(m) + "nested deeper than 64 levels");
  }
  int documents = 0;
  // one document, as PyYAML's get_single_node asks (and yaml-cpp can report endless empty
  // documents on some malformed input: a fuzzed policy spun forever)
  void OnDocumentStart(const YAML::Mark& m) override {
    if (++documents > 1) throw SpecError(at(m) + "invalid YAML: but found another document");
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& m, YAML::anchor_t a) override { anchor(m, a); }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override {
    throw SpecError(at(m) + "aliases are not allowed in this file", "write the value out in full");
  }
  void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t a, const std::string&) override { anchor(m, a); }
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t a, YAML::EmitterStyle::value) override { open(m, a); }
  void OnSequenceEnd() override { --depth; }
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t a, YAML::EmitterStyle::value) override { open(m, a); }
  void OnMapEnd() override { --depth; }
};

}  // namespace

class TrustPolicy {
 public:
  struct Rule {
    std::string ns;
    NodePtr signers;
    /// who signs the catalogue statements of these names, by action; none: not signed
    std::optional<std::map<std::string, NodePtr>> catalog;
    /// alias → role → who may approve (in file order)
    std::vector<std::pair<std::string, std::vector<std::pair<std::string, NodePtr>>>> approvals;
    bool matches(const std::string& name) const {
      const std::string target = ns.find('/') != std::string::npos ? name : name.substr(0, name.find('/'));
      return fnmatchcase(target, ns);
    }
  };
  std::vector<Rule> rules;
  std::string source;
  std::vector<CertPtr> tsa;  ///< roots of the RFC 3161 TSAs trusted for signing times

  const Rule& ruleFor(const std::string& name) const {
    for (const auto& rule : rules)
      if (rule.matches(name)) return rule;
    throw PolicyError("no rule of trust policy " + source + " covers " + name, "add a rule whose namespace pattern matches it");
  }
};

namespace {

YAML::Node parseYaml(const std::string& text, const std::string& path) {
  const auto nul = text.find('\0');
  if (nul != std::string::npos)
    throw SpecError(path + ":" + std::to_string(std::count(text.begin(), text.begin() + static_cast<long>(nul), '\n') + 1) +
                    ": invalid YAML: a NUL byte");
  try {
    {
      std::istringstream in(text);
      YAML::Parser parser(in);
      Guard guard(path);
      while (parser.HandleNextDocument(guard)) {
      }
    }
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw SpecError(path + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
  }
}

bool isAliasName(const std::string& a) { return isAlias(a); }

std::shared_ptr<TrustPolicy> readPolicy(const YAML::Node& doc, const Reader& r, const std::string& source) {
  auto policy = std::make_shared<TrustPolicy>();
  policy->source = source;
  if (!doc.IsMap()) throw SpecError(source + ": (top level): " + Reader::describe(doc) + " is not of type 'object'");
  r.keys(doc, "", {"version", "rules", "description", "tsa"});
  for (const char* k : {"version", "rules"})
    if (!doc[k]) throw SpecError(r.where(doc) + k + ": required field is missing");
  const YAML::Node version = doc["version"];
  if (!version.IsScalar() || version.Tag() == "!" || version.Scalar() != "1") r.fail(version, "version", "1 was expected");
  if (const YAML::Node tsa = doc["tsa"]) {
    // RFC 3161 TSA roots: a signature's token is checked against them (x509.cpp verifyTimestamp)
    if (!tsa.IsMap()) r.fail(tsa, "tsa", Reader::describe(tsa) + " is not of type 'object'");
    r.keys(tsa, "tsa", {"ca"});
    if (!tsa["ca"]) r.fail(tsa, "tsa.ca", "required field is missing");
    if (!tsa["ca"].IsSequence()) r.fail(tsa["ca"], "tsa.ca", Reader::describe(tsa["ca"]) + " is not of type 'array'");
    for (const auto& ca : r.paths(tsa["ca"], "tsa.ca")) {
      std::string text = ca;
      if (!startsWith(ca, kPem)) {
        try {
          text = readSmallFile(r.rel(ca), 16u << 20);
        } catch (const ReadError& e) {
          throw SpecError(source + ": tsa.ca " + pyrepr(ca.substr(0, 40)) + ": not a readable PEM certificate: " +
                          (e.err ? std::strerror(e.err) : "not a regular file"));
        }
      }
      try {
        for (auto& c : certsFromPem(text)) policy->tsa.push_back(std::move(c));
      } catch (const SpecError&) {
        throw SpecError(source + ": tsa.ca " + pyrepr(ca.substr(0, 40)) + ": not a readable PEM certificate");
      }
    }
  }
  const YAML::Node rules = doc["rules"];
  if (!rules.IsSequence()) r.fail(rules, "rules", Reader::describe(rules) + " is not of type 'array'");
  if (rules.size() == 0) r.fail(rules, "rules", "[] should be non-empty");
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const std::string f = "rules[" + std::to_string(i) + "]";
    const YAML::Node rule = rules[i];
    if (!rule.IsMap()) r.fail(rule, f, Reader::describe(rule) + " is not of type 'object'");
    r.keys(rule, f, {"namespace", "signers", "description", "catalog", "approvals"});
    for (const char* k : {"namespace", "signers"})
      if (!rule[k]) r.fail(rule, f + "." + k, "required field is missing");
    TrustPolicy::Rule out{r.string(rule["namespace"], f + ".namespace"), r.node(rule["signers"], f + ".signers", 0), std::nullopt, {}};
    if (const YAML::Node cat = rule["catalog"]) {
      // one expression for every action, or one per action (policy.py TrustPolicy.from_data)
      bool perAction = cat.IsMap() && cat.size() > 0;
      for (auto it = cat.begin(); perAction && it != cat.end(); ++it) {
        const std::string k = it->first.IsScalar() ? it->first.Scalar() : "";
        perAction = std::find(std::begin(kActions), std::end(kActions), k) != std::end(kActions);
      }
      std::map<std::string, NodePtr> nodes;
      if (perAction) {
        for (auto it = cat.begin(); it != cat.end(); ++it)
          nodes[it->first.Scalar()] = r.node(it->second, f + ".catalog." + it->first.Scalar(), 0);
      } else {
        NodePtr one = r.node(cat, f + ".catalog", 0);
        for (const char* a : kActions) nodes[a] = one;
      }
      out.catalog = std::move(nodes);
    }
    if (const YAML::Node approvals = rule["approvals"]) {
      const std::string fa = f + ".approvals";
      if (!approvals.IsMap()) r.fail(approvals, fa, Reader::describe(approvals) + " is not of type 'object'");
      for (auto it = approvals.begin(); it != approvals.end(); ++it) {
        const std::string alias = it->first.IsScalar() ? it->first.Scalar() : "?";
        if (!isAliasName(alias)) r.fail(it->first, fa, pyrepr(alias) + " does not match '^[a-z][a-z0-9._-]{0,63}$'");
        const YAML::Node roles = it->second;
        const std::string fr = fa + "." + alias;
        if (!roles.IsMap()) r.fail(roles, fr, Reader::describe(roles) + " is not of type 'object'");
        if (roles.size() == 0) r.fail(roles, fr, "{} should be non-empty");
        std::vector<std::pair<std::string, NodePtr>> byRole;
        for (auto rt = roles.begin(); rt != roles.end(); ++rt) {
          const std::string role = rt->first.IsScalar() ? rt->first.Scalar() : "?";
          for (char c : role)
            if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'))
              r.fail(rt->first, fr, pyrepr(role) + " does not match '^[A-Za-z0-9_-]+$'");
          byRole.emplace_back(role, r.node(rt->second, fr + "." + role, 0));
        }
        out.approvals.emplace_back(alias, std::move(byRole));
      }
    }
    policy->rules.push_back(std::move(out));
  }
  return policy;
}

}  // namespace

namespace {
std::shared_ptr<const TrustPolicy> readPolicyFile(const std::string& path);
}  // namespace

// Per process, a policy file is read once and kept while it and every file it named (keys, CA
// files and directories, CRLs) keep their identity: a repeat resolve costs a few stat calls, not
// a YAML parse and key decoding. Failures, and files changed in the last second, are not
// kept; at most 16 policies are.
std::shared_ptr<const TrustPolicy> loadPolicy(const std::string& path) {
  struct Memo {
    std::shared_ptr<const TrustPolicy> policy;
    std::vector<std::pair<std::string, FileId>> files;
  };
  static std::mutex lock;
  static std::map<std::string, Memo> memo;
  const std::string key = absolutePath(path);
  {
    std::lock_guard<std::mutex> g(lock);
    auto it = memo.find(key);
    if (it != memo.end() && unchanged(it->second.files)) return it->second.policy;
  }
  Memo fresh;
  {
    ReadRecorder reads;
    fresh.policy = readPolicyFile(path);
    fresh.files = std::move(reads.files);
  }
  // a file changed in the last seconds may change again within the file system's timestamp
  // granularity without its identity moving ("racy" files, as git calls them): not kept
  if (recentlyChanged(fresh.files, 1)) return fresh.policy;
  std::lock_guard<std::mutex> g(lock);
  if (memo.size() >= 16 && !memo.count(key)) memo.erase(memo.begin());
  memo[key] = fresh;
  return fresh.policy;
}

namespace {
std::shared_ptr<const TrustPolicy> readPolicyFile(const std::string& path) {
  std::string text;
  try {
    text = readSmallFile(path, kMaxYamlBytes);
  } catch (const ReadError& e) {
    if (e.err == ENOENT) throw SpecError("trust policy " + path + " does not exist");
    const std::string why = e.tooBig ? std::to_string(e.size) + " bytes, over the limit of " + std::to_string(kMaxYamlBytes) : e.notRegular ? "not a regular file" : std::strerror(e.err);
    throw SpecError("cannot read trust policy " + path + ": " + why);
  }
  std::size_t bad = 0;
  if (const char* why = utf8Error(text, bad))
    throw SpecError("cannot read trust policy " + path + ": not UTF-8 (" + why + " at byte " + std::to_string(bad) + ")");
  const YAML::Node doc = parseYaml(text, path);
  Reader r{path, dirName(realpathOf(absolutePath(path))), {}};
  try {
    return readPolicy(doc, r, path);
  } catch (const YAML::Exception& e) {  // a node of an unexpected kind: one clean line
    throw SpecError(path + ":" + std::to_string(e.mark.line + 1) + ": invalid policy: " + e.msg);
  }
}
}  // namespace

std::shared_ptr<const TrustPolicy> policyFromDocument(const std::string& text, const std::string& member, const std::string& source,
                                                      const std::string& base) {
  parseJson(text, source);  // a JSON document (a trust root): strict JSON before yaml-cpp reads it
  const YAML::Node doc = parseYaml(text, source);
  Reader r{source, base, {}};
  if (!doc.IsMap() || !doc[member]) throw SpecError(source + ": " + member + ": required field is missing");
  try {
    return readPolicy(doc[member], r, source);
  } catch (const YAML::Exception& e) {  // a node of an unexpected kind: one clean line
    throw SpecError(source + ":" + std::to_string(e.mark.line + 1) + ": invalid policy: " + e.msg);
  }
}

std::vector<Signer> evaluatePolicy(const TrustPolicy& policy, const std::string& name, const std::vector<Candidate>& cs) {
  return policy.ruleFor(name).signers->evaluate(name, cs);
}

bool signsCatalog(const TrustPolicy& policy, const std::string& name) { return policy.ruleFor(name).catalog.has_value(); }

std::vector<Signer> evaluateCatalog(const TrustPolicy& policy, const std::string& name, const std::string& action,
                                    const std::vector<Candidate>& cs) {
  const auto& rule = policy.ruleFor(name);
  auto it = rule.catalog->find(action);
  if (it == rule.catalog->end())
    throw PolicyError("the trust policy " + policy.source + " allows no one to " + action + " " + name,
                      "add '" + action + "' to the catalog: signers of the rule " + pyrepr(rule.ns));
  return it->second->evaluate(name, cs);
}

std::vector<std::string> requiredApprovals(const TrustPolicy& policy, const std::string& name, const std::string& alias) {
  std::vector<std::string> out;
  for (const auto& [a, roles] : policy.ruleFor(name).approvals)
    if (a == alias)
      for (const auto& role : roles) out.push_back(role.first);
  return out;
}

std::vector<Signer> evaluateApproval(const TrustPolicy& policy, const std::string& name, const std::string& alias,
                                     const std::string& role, const std::string& label, const std::vector<Candidate>& cs) {
  for (const auto& [a, roles] : policy.ruleFor(name).approvals)
    if (a == alias)
      for (const auto& [r, node] : roles)
        if (r == role) return node->evaluate(label, cs);
  throw PolicyError("no approval rule for " + role);
}

const std::string& policySource(const TrustPolicy& policy) { return policy.source; }
const std::vector<CertPtr>& tsaRoots(const TrustPolicy& policy) { return policy.tsa; }

}  // namespace hepbundle::detail
