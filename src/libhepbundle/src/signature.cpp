// OMS v1.0 signature files (bundle-spec/signing.md): parse the sigstore bundle JSON, check the
// signed in-toto statement against the manifest, then let the trust policy judge the signers.
// Messages as src/hepbundle/signing.py and src/hepbundle/_signers/__init__.py.
#include <dirent.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>

#include "sig.hpp"

namespace hepbundle::detail {

namespace {

const char* kInToto = "application/vnd.in-toto+json";
const char* kPredicateV1 = "https://model_signing/signature/v1.0";
const char* kPredicateCompat = "https://model_signing/Digests/v0.1";

// a malformed statement or bundle field: Python's KeyError/TypeError/ValueError text
struct Malformed {
  std::string what;
};

const json& at(const json& obj, const char* key) {
  if (!obj.is_object()) throw Malformed{std::string("'") + obj.type_name() + "' object is not subscriptable"};
  auto it = obj.find(key);
  if (it == obj.end()) throw Malformed{std::string("'") + key + "'"};
  return *it;
}

std::string str(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

std::string b64decode(const json& value) {
  if (!value.is_string()) throw Malformed{std::string("expected a base64 string, got ") + (value.is_null() ? "NoneType" : value.type_name())};
  const std::string& s = value.get_ref<const std::string&>();
  // the value of each alphabet character, -1 for the others (a table: catalogue statements
  // bring a dozen signature documents per resolve)
  static const std::array<signed char, 256> table = [] {
    std::array<signed char, 256> t{};
    t.fill(-1);
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[i])] = static_cast<signed char>(i);
    return t;
  }();
  std::string out;
  out.reserve(s.size() / 4 * 3);
  unsigned buf = 0;
  int bits = 0;
  std::size_t count = 0, pad = 0;
  for (char c : s) {
    if (c == '=') {
      ++pad;
      continue;
    }
    const int pos = table[static_cast<unsigned char>(c)];
    if (pos < 0) continue;  // discarded, as base64.b64decode does
    if (pad) throw Malformed{"Invalid base64-encoded string"};
    buf = (buf << 6) | static_cast<unsigned>(pos);
    bits += 6;
    ++count;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buf >> bits) & 0xff);
    }
  }
  if (count % 4 == 1)
    throw Malformed{"Invalid base64-encoded string: number of data characters (" + std::to_string(count) +
                    ") cannot be 1 more than a multiple of 4"};
  if (count % 4 && pad < 4 - count % 4) throw Malformed{"Incorrect padding"};
  return out;
}

std::string fromhexToHex(const json& v) {
  if (!v.is_string()) throw Malformed{"fromhex() argument must be str, not " + std::string(v.type_name())};
  const std::string& s = v.get_ref<const std::string&>();
  std::string out;
  std::size_t i = 0;
  auto hexval = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  while (i < s.size()) {
    if (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' || s[i] == '\v' || s[i] == '\f') {
      ++i;
      continue;
    }
    if (i + 1 >= s.size() || hexval(s[i]) < 0 || hexval(s[i + 1]) < 0)
      throw Malformed{"non-hexadecimal number found in fromhex() arg at position " + std::to_string(hexval(s[i]) < 0 ? i : i + 1)};
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(s[i])));
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(s[i + 1])));
    i += 2;
  }
  return out;
}

std::map<std::string, std::string> signedDigests(const json& statement) {
  const std::string predicateType = str(at(statement, "predicateType"));
  std::map<std::string, std::string> out;
  if (predicateType == kPredicateCompat) {
    for (const json& s : at(statement, "subject")) out[posixPath(str(at(s, "name")))] = fromhexToHex(at(at(s, "digest"), "sha256"));
    return out;
  }
  if (predicateType != kPredicateV1)
    throw Malformed{std::string("Predicate type mismatch, expected ") + kPredicateV1 + ", got " + predicateType};
  const json& subjects = at(statement, "subject");
  if (!subjects.is_array() || subjects.size() != 1) throw Malformed{"Expected only one subject, got " + subjects.dump()};
  const std::string expectedRoot = str(at(at(subjects[0], "digest"), "sha256"));
  const json& predicate = at(statement, "predicate");
  const std::string method = str(at(at(predicate, "serialization"), "method"));
  if (method != "files" && method != "shards") throw Malformed{"Unknown serialization type " + method};
  const json& resources = at(predicate, "resources");
  if (!resources.is_array()) throw Malformed{"'" + std::string(resources.type_name()) + "' object is not iterable"};
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  for (const json& r : resources) {
    const std::string hex = fromhexToHex(at(r, "digest"));
    std::string raw;
    for (std::size_t i = 0; i < hex.size(); i += 2) raw += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    EVP_DigestUpdate(ctx.get(), raw.data(), raw.size());
    std::string name = str(at(r, "name"));
    if (method == "shards") {
      std::vector<std::string> parts;
      std::size_t s = 0;
      for (std::size_t p; (p = name.find(':', s)) != std::string::npos; s = p + 1) parts.push_back(name.substr(s, p - s));
      parts.push_back(name.substr(s));
      if (parts.size() != 3) throw Malformed{"Invalid resource name: expected 3 components separated by `:`, got " + name};
      try {
        name = posixPath(parts[0]) + ":" + std::to_string(std::stoll(parts[1])) + ":" + std::to_string(std::stoll(parts[2]));
      } catch (const std::exception&) {
        throw Malformed{"invalid literal for int() with base 10: " + pyrepr(parts[1])};
      }
    } else {
      name = posixPath(name);
    }
    out[name] = hex;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &n);
  const std::string root = hexOf(md, n);
  if (root != expectedRoot)
    throw Malformed{"Manifest is inconsistent. Root digest is " + expectedRoot + ", but the included resources hash to " + root};
  return out;
}

CertPtr derCert(const std::string& der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  X509* x = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
  if (!x) throw Malformed{"error parsing asn1 value"};
  return CertPtr(x, X509Free{});
}

json statementOf(const ParsedSignature& sig) {
  if (sig.payloadType != kInToto)
    throw SignatureError(sig.name + ": DSSE payload type is " + pyrepr(sig.payloadType) + ", expected " + pyrepr(kInToto));
  json obj;
  try {
    obj = parseJson(sig.payload, "payload");
  } catch (const FormatError& e) {
    throw SignatureError(sig.name + ": malformed signature file: " + e.message());
  }
  if (!obj.is_object()) throw SignatureError(sig.name + ": malformed signature file: payload not an object");
  return obj;
}

std::int64_t signedAt(const json& stmt) {
  auto p = stmt.find("predicate");
  if (p != stmt.end() && p->is_object()) {
    auto h = p->find("hepbundle");
    if (h != p->end() && h->is_object()) {
      auto s = h->find("signedAt");
      if (s != h->end()) {
        if (auto t = parseUtc(str(*s))) return *t;
      }
    }
  }
  // a signature made by plain model_signing records no time: judge it as of now
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The one digest algorithm the statement's resources use (serialization.hash_type, repeated by
// every resource), a known one (src/hepbundle/signing.py _statement_algorithm)
std::string signedAlgorithm(const ParsedSignature& sig, const json& stmt) {
  std::string name;
  try {
    if (str(at(stmt, "predicateType")) == kPredicateCompat) return "sha256";
    const json& ht = at(at(at(stmt, "predicate"), "serialization"), "hash_type");
    if (!ht.is_string()) throw Malformed{"serialization.hash_type must be a string, got " + ht.dump()};
    name = ht.get<std::string>();
    for (const json& r : at(at(stmt, "predicate"), "resources"))
      if (at(r, "algorithm") != ht)
        throw Malformed{"resource " + pyrepr(str(at(r, "name"))) + " has a " + pyrepr(str(at(r, "algorithm"))) +
                        " digest but the serialization names " + pyrepr(name)};
  } catch (const Malformed& m) {
    throw SignatureError(sig.name + ": malformed signature file: statement: " + m.what);
  }
  try {
    return algorithmName(algorithmFromName(name));
  } catch (const FormatError& e) {
    throw SignatureError(sig.name + ": " + e.message(), e.hint());
  }
}

// The role a signature was made for, as its signed statement says; the file name is only where
// it is stored. A signature whose file claims another role was renamed: refused.
std::string roleOf(const ParsedSignature& sig, const json& stmt, const std::string& fileRole, const std::string& what) {
  const json* role = nullptr;
  auto p = stmt.find("predicate");
  if (p != stmt.end() && p->is_object()) {
    auto h = p->find("hepbundle");
    if (h != p->end() && h->is_object()) {
      auto r = h->find("role");
      if (r != h->end() && !r->is_null()) role = &*r;
    }
  }
  if (!role) {
    // plain model_signing signs no role: it can only stand as the primary signature
    if (fileRole == "primary") return fileRole;
    throw SignatureError(what + ": " + sig.name + " names no role in its signed statement",
                         "a co-signature's role must be signed: re-sign with hepbundle sign --role");
  }
  if (!role->is_string() || role->get<std::string>() != fileRole)
    throw SignatureError(what + ": " + sig.name + " was signed as role " + (role->is_string() ? pyrepr(role->get<std::string>()) : role->dump()) +
                             ", not " + pyrepr(fileRole),
                         "the signature file was renamed; roles are taken from the signed statement");
  return fileRole;
}

}  // namespace

json signedStatement(const ParsedSignature& sig) { return statementOf(sig); }
std::int64_t signedTime(const json& stmt) { return signedAt(stmt); }
std::map<std::string, std::string> statementDigests(const json& stmt) {
  try {
    return signedDigests(stmt);
  } catch (const Malformed& m) {
    throw std::invalid_argument(m.what);
  }
}
std::string statementAlgorithm(const ParsedSignature& sig, const json& stmt) { return signedAlgorithm(sig, stmt); }
std::string signedRole(const ParsedSignature& sig, const json& stmt, const std::string& fileRole, const std::string& what) {
  return roleOf(sig, stmt, fileRole, what);
}
void checkSignedDigests(const ParsedSignature& sig, const json& stmt, const std::map<std::string, std::string>& expected, Algorithm alg,
                        const std::string& what);

Signer Candidate::info(const std::string& kind, const std::string& identity, const std::string& issuer) const {
  return Signer{kind, identity, sig.name, role, formatUtc(signedAt), issuer, timestampedAt ? formatUtc(*timestampedAt) : ""};
}

ParsedSignature parseSignature(const std::string& path, const std::string& name) {
  std::string raw;
  try {
    raw = readSmallFile(path, kMaxSignatureBytes);
  } catch (const ReadError& e) {
    if (e.err == ENOENT) throw SignatureError(name + " is missing");
    const std::string why = e.tooBig ? std::to_string(e.size) + " bytes, over the limit of " + std::to_string(kMaxSignatureBytes)
                            : e.notRegular ? "not a regular file"
                                           : std::string("[Errno ") + std::to_string(e.err) + "] " + std::strerror(e.err);
    throw SignatureError(name + ": malformed signature file: " + why);
  }
  json doc;
  try {
    doc = parseJson(raw, name);
  } catch (const FormatError& e) {
    // Python prints the JSON decoder's own words after "malformed signature file: "
    const std::string prefix = name + ": not valid JSON: ";
    const std::string& m = e.message();
    throw SignatureError(name + ": malformed signature file: " +
                         (startsWith(m, prefix) ? m.substr(prefix.size()) : startsWith(m, name + ": ") ? m.substr(name.size() + 2) : m));
  }
  return parseSignatureDocument(doc, name);
}

ParsedSignature parseSignatureDocument(const json& doc, const std::string& name) {
  try {
    const json& vm = at(doc, "verificationMaterial");
    if (!vm.is_object()) throw Malformed{"'" + std::string(vm.type_name()) + "' object has no attribute 'get'"};
    ParsedSignature sig;
    sig.name = name;
    auto tlog = vm.find("tlogEntries");
    const bool keyless = (tlog != vm.end() && !tlog->is_null() && !tlog->empty() && !(tlog->is_boolean() && !tlog->get<bool>())) ||
                         vm.contains("certificate");
    auto env = doc.find("dsseEnvelope");
    if (env == doc.end() || !env->is_object()) throw SignatureError(name + ": malformed signature file: no DSSE envelope");
    auto sigs = env->find("signatures");
    if (sigs == env->end() || sigs->is_null() || sigs->empty() || !sigs->is_array())
      throw SignatureError(name + ": malformed signature file: no DSSE envelope");
    sig.payloadType = str(at(*env, "payloadType"));
    sig.payload = b64decode(at(*env, "payload"));
    sig.signature = b64decode(at((*sigs)[0], "sig"));
    if (!keyless) {
      // verificationMaterial.timestampVerificationData.rfc3161Timestamps[].signedTimestamp
      auto tsd = vm.find("timestampVerificationData");
      if (tsd != vm.end() && !tsd->is_null() && !(tsd->is_object() && tsd->empty())) {
        if (!tsd->is_object()) throw Malformed{"'" + std::string(tsd->type_name()) + "' object has no attribute 'get'"};
        auto stamps = tsd->find("rfc3161Timestamps");
        if (stamps != tsd->end() && !stamps->is_null()) {
          if (!stamps->is_array()) throw Malformed{"'" + std::string(stamps->type_name()) + "' object is not iterable"};
          for (const json& t : *stamps) sig.timestamps.push_back(b64decode(at(t, "signedTimestamp")));
        }
      }
    }
    if (keyless) {
      sig.kind = "sigstore";
      auto cert = vm.find("certificate");
      if (cert != vm.end()) sig.chain.push_back(derCert(b64decode(at(*cert, "rawBytes"))));
      else sig.chain.push_back(derCert(b64decode(at(at(at(vm, "x509CertificateChain"), "certificates")[0], "rawBytes"))));
      return sig;
    }
    auto chain = vm.find("x509CertificateChain");
    if (chain != vm.end() && !chain->is_null()) {
      const json& certs = at(*chain, "certificates");
      if (!certs.is_array()) throw Malformed{"'" + std::string(certs.type_name()) + "' object is not iterable"};
      for (const json& c : certs) sig.chain.push_back(derCert(b64decode(at(c, "rawBytes"))));
      if (sig.chain.empty()) throw SignatureError(name + ": malformed signature file: empty certificate chain");
      sig.kind = "x509";
      return sig;
    }
    sig.kind = "key";
    auto pk = vm.find("publicKey");
    if (pk != vm.end() && pk->is_object()) {
      auto hint = pk->find("hint");
      if (hint != pk->end() && !hint->is_null()) {
        if (!hint->is_string()) throw Malformed{std::string("publicKey.hint must be a string, got ") + hint->type_name()};
        sig.keyHint = hint->get<std::string>();
      }
    }
    return sig;
  } catch (const Malformed& m) {
    throw SignatureError(name + ": malformed signature file: " + m.what);
  }
}

std::vector<std::pair<std::string, std::string>> signatureFiles(const std::string& root) {
  std::vector<std::pair<std::string, std::string>> out;
  auto isFile = [](const std::string& p) {
    struct stat st {};
    return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
  };
  if (isFile(root + "/hepbundle.sig")) out.emplace_back("primary", root + "/hepbundle.sig");
  std::vector<std::string> names;
  if (DIR* d = opendir(root.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n != "hepbundle.sig" && n.size() >= 14 && startsWith(n, "hepbundle.") && endsWith(n, ".sig")) names.push_back(n);
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  for (const auto& n : names)
    if (isFile(root + "/" + n)) out.emplace_back(n.substr(10, n.size() - 14), root + "/" + n);
  return out;
}

namespace {

// signing._check_statement: the signed digests must be exactly expected, in algorithm alg
void checkStatement(const ParsedSignature& sig, const json& stmt, const std::map<std::string, std::string>& expected, Algorithm alg,
                    const std::string& what) {
  const std::string signedAlg = signedAlgorithm(sig, stmt);
  if (signedAlg != algorithmName(alg))
    throw SignatureError(what + ": " + sig.name + " signs " + signedAlg + " digests but the manifest lists " + algorithmName(alg) +
                             " digests",
                         "the signature belongs to another build of this bundle");
  std::map<std::string, std::string> signedMap;
  try {
    signedMap = signedDigests(stmt);
  } catch (const Malformed& m) {
    throw SignatureError(sig.name + ": malformed signature file: statement: " + m.what);
  }
  std::vector<std::string> problems;
  for (const auto& [p, d] : expected) {
    auto it = signedMap.find(p);
    if (it != signedMap.end() && it->second != d) problems.push_back("digest mismatch in " + p);
  }
  for (const auto& [p, d] : expected)
    if (!signedMap.count(p)) problems.push_back("extra " + p + " (not covered by the signature)");
  for (const auto& [p, d] : signedMap)
    if (!expected.count(p)) problems.push_back("missing " + p + " (signed but absent)");
  if (problems.empty()) return;
  const bool manifestProblem = std::any_of(problems.begin(), problems.end(), [](const std::string& p) {
    return p.find("hepbundle.json") != std::string::npos;
  });
  const std::size_t n = problems.size();
  const std::string more = n > 20 ? "; … and " + thousands(n - 20) + " more" : "";
  if (n > 20) problems.resize(20);
  throw SignatureError(what + ": " + sig.name + " does not match: " + join(problems, "; ") + more,
                       manifestProblem ? "the manifest was edited or the signature belongs to another bundle" : "");
}

// the bundle a signature names (predicate hepbundle.name, "ns/name@version"), if any
std::optional<std::string> signedRef(const json& stmt) {
  auto p = stmt.find("predicate");
  if (p == stmt.end() || !p->is_object()) return std::nullopt;
  auto h = p->find("hepbundle");
  if (h == p->end() || !h->is_object()) return std::nullopt;
  auto n = h->find("name");
  if (n == h->end() || !n->is_string() || n->get<std::string>().find('@') == std::string::npos) return std::nullopt;
  return n->get<std::string>();
}

// a manifest whose bytes the signatures do not cover is refused unparsed when larger than this;
// a smaller one (every real bundle) is parsed only to list which entries differ
constexpr std::size_t kDiagnoseBytes = 1u << 20;

}  // namespace

std::optional<ManifestCheck> verifyManifestSignature(const std::string& root, const std::string& data,
                                                     const std::function<PolicyPtr(const std::string&, const std::string&)>& policyFor) {
  const auto files = signatureFiles(root);
  if (files.empty()) return std::nullopt;
  std::vector<CheckedSignature> parsed;
  std::set<std::optional<std::string>> refs;
  for (const auto& [role, path] : files) {
    ParsedSignature sig = parseSignature(path, baseName(path));
    json stmt = statementOf(sig);
    refs.insert(signedRef(stmt));
    parsed.push_back({std::move(sig), std::move(stmt), role});
  }
  if (refs.size() != 1 || !*refs.begin()) return std::nullopt;
  const std::string ref = **refs.begin();
  const auto at = ref.rfind('@');
  const std::string name = ref.substr(0, at), version = ref.substr(at + 1);
  const std::string what = ref + " (" + root + ")";
  PolicyPtr policy = policyFor(name, version);
  std::vector<Candidate> candidates;
  for (const auto& c : parsed) {
    const std::string alg = signedAlgorithm(c.sig, c.stmt);
    std::map<std::string, std::string> signedMap;
    try {
      signedMap = signedDigests(c.stmt);
    } catch (const Malformed& m) {
      throw SignatureError(c.sig.name + ": malformed signature file: statement: " + m.what);
    }
    auto it = signedMap.find("hepbundle.json");
    if (it == signedMap.end() || it->second != digestHex(data, algorithmFromName(alg))) {
      if (data.size() <= kDiagnoseBytes) return std::nullopt;  // refused after parsing, every differing entry listed
      throw SignatureError(what + ": " + c.sig.name + " does not match: " + (it != signedMap.end() ? "digest mismatch in" : "extra") +
                               " hepbundle.json",
                           "the manifest was edited or the signature belongs to another bundle");
    }
    const auto stamped = timestampedAt(c.sig, *policy, what + ": " + c.sig.name);
    const std::string signedRole = roleOf(c.sig, c.stmt, c.fileRole, what);
    candidates.push_back(Candidate{c.sig, signedRole, signedAt(c.stmt), stamped});
  }
  return ManifestCheck{ref, policy, evaluatePolicy(*policy, name, candidates), std::move(parsed)};
}

void checkSignedDigests(const ParsedSignature& sig, const json& stmt, const std::map<std::string, std::string>& expected, Algorithm alg,
                        const std::string& what) {
  checkStatement(sig, stmt, expected, alg, what);
}

std::optional<std::int64_t> timestampedAt(const ParsedSignature& sig, const TrustPolicy& policy, const std::string& where) {
  std::optional<std::int64_t> earliest;
  for (const auto& token : sig.timestamps) {
    const std::int64_t t = verifyTimestamp(token, sig.signature, tsaRoots(policy), where);
    earliest = earliest ? std::min(*earliest, t) : t;
  }
  return earliest;
}

std::vector<Signer> finishPrechecked(const ManifestCheck& pre, const std::string& ref, Algorithm alg,
                                     const std::map<std::string, std::string>& expected) {
  if (pre.ref != ref) throw SignatureError(ref + ": the signatures were made for " + pre.ref, "the signature belongs to another bundle");
  for (const auto& c : pre.sigs) checkStatement(c.sig, c.stmt, expected, alg, ref);
  return pre.signers;
}

std::vector<Signer> verifySignatures(const std::string& root, const std::string& name, const std::string& what, Algorithm alg,
                                     const std::map<std::string, std::string>& expected, const TrustPolicy& policy) {
  const auto files = signatureFiles(root);
  if (files.empty())
    throw SignatureError(what + " is unsigned (hepbundle.sig is missing)", "sign it with: hepbundle sign");
  std::vector<Candidate> candidates;
  for (const auto& [role, path] : files) {
    ParsedSignature sig = parseSignature(path, baseName(path));
    const json stmt = statementOf(sig);
    checkStatement(sig, stmt, expected, alg, what);
    const std::int64_t at = signedAt(stmt);
    const auto stamped = timestampedAt(sig, policy, what + ": " + sig.name);
    const std::string signedRole = roleOf(sig, stmt, role, what);
    candidates.push_back(Candidate{std::move(sig), signedRole, at, stamped});
  }
  return evaluatePolicy(policy, name, candidates);
}

}  // namespace hepbundle::detail
