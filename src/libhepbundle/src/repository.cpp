// Resolving references over repositories (src/hepbundle/load.py resolve, repository/refs.py,
// repository/catalog.py; bundle-spec/repository.md): only the per-name catalogue file is read,
// then the bundle is opened and must have the manifest digest the catalogue recorded.
#include <dirent.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "sig.hpp"

namespace hepbundle {

namespace detail {

namespace {

const char* kCatalogMediaType = "application/vnd.hepbundle.catalog.v1+json";

struct Record {
  std::string version, digest;
  std::optional<std::string> yanked;
  nlohmann::ordered_json validity;  // the manifest's scope as published (not signed); null: none
};

struct NameCatalog {
  std::string name;
  std::vector<Record> versions;  // file order
  std::vector<std::pair<std::string, std::string>> aliases;
  ojson statements;              // signed catalogue statements, oldest first (statements.cpp); null: none
  std::string digest;            // SHA-256 of the file's bytes

  bool hasAlias(const std::string& a) const {
    return std::any_of(aliases.begin(), aliases.end(), [&](const auto& kv) { return kv.first == a; });
  }

  const Record* find(const std::string& v) const {
    for (const auto& r : versions)
      if (r.version == v) return &r;
    return nullptr;
  }
  std::vector<const Record*> sorted() const {
    std::vector<const Record*> out;
    for (const auto& r : versions) out.push_back(&r);
    std::stable_sort(out.begin(), out.end(), [](const Record* a, const Record* b) { return versionKey(a->version) < versionKey(b->version); });
    return out;
  }
  // @valid (NameCatalog.valid_for): the newest release, neither yanked nor a pre-release, whose
  // recorded scope covers the context; the resolver confirms it on the verified manifest
  const Record& validFor(const Context& ctx) const {
    std::vector<const Record*> usable;
    for (const Record* r : sorted())
      if (!r->yanked && !isPrerelease(r->version)) usable.push_back(r);
    for (auto it = usable.rbegin(); it != usable.rend(); ++it) {
      try {
        if (parseScope((*it)->validity, name + "@" + (*it)->version + ": validity").covers(ctx)) return **it;
      } catch (const FormatError&) {
        // an unreadable record is never the valid one
      }
    }
    std::vector<std::string> keys, seen;
    for (const auto& kv : ctx.values) keys.push_back(kv.first);
    for (std::size_t i = usable.size(); i > (usable.size() > 5 ? usable.size() - 5 : 0); --i) {
      std::string said;
      try {
        said = parseScope(usable[i - 1]->validity, "validity").describe(&keys);
      } catch (const FormatError&) {
        said = "unreadable scope";
      }
      seen.push_back(usable[i - 1]->version + " (" + said + ")");
    }
    throw NotFoundError("no version of " + name + " is valid for " + ctx.str(),
                        "released versions: " + (seen.empty() ? std::string("none") : join(seen, "; ")) + " (bundle-spec/validity.md)");
  }
  const Record& resolve(const std::optional<std::string>& selector) const {
    const auto alias = [&](const std::string& a) -> const std::string* {
      for (const auto& [k, v] : aliases)
        if (k == a) return &v;
      return nullptr;
    };
    if (!selector || (*selector == "latest" && !alias("latest"))) {
      const Record* best = nullptr;
      for (const Record* r : sorted())
        if (!r->yanked && !isPrerelease(r->version)) best = r;
      if (!best) {  // NameCatalog.resolve's three cases
        auto all = sorted();
        std::vector<std::string> usable;
        for (const Record* r : all)
          if (!r->yanked) usable.push_back(r->version);
        if (all.empty()) throw NotFoundError(name + " has no published version");
        if (usable.empty())
          throw NotFoundError("every version of " + name + " is yanked (latest " + all.back()->version + ": " + *all.back()->yanked + ")",
                              "publish a fixed version, or name a yanked one explicitly and allow it (--allow-yanked / allow_yanked=True)");
        std::vector<std::string> last(usable.size() > 5 ? usable.end() - 5 : usable.begin(), usable.end());
        throw NotFoundError(name + " has only pre-release versions", "name one explicitly: " + join(last, ", "));
      }
      return *best;
    }
    if (const Record* r = find(*selector)) return *r;
    if (const std::string* v = alias(*selector)) return *find(*v);
    std::vector<std::string> known;
    for (const auto& r : versions) known.push_back(r.version);
    for (const auto& a : aliases) known.push_back(a.first);
    auto close = closeMatches(*selector, known, 3, 0.5);
    std::vector<std::string> released;  // a close match that is not yanked is the better hint
    for (const auto& c : close)
      if (!resolve(c).yanked) released.push_back(c);
    if (!released.empty()) close = released;
    std::vector<std::string> quoted;
    for (const auto& c : close) quoted.push_back(pyrepr(c));
    std::vector<std::string> tail(known.size() > 8 ? known.end() - 8 : known.begin(), known.end());
    throw NotFoundError(name + " has no " + (isSemver(*selector) ? "version" : "version or alias") + " " + pyrepr(*selector),
                        close.empty() ? "known: " + (tail.empty() ? std::string("none") : join(tail, ", "))
                                      : "did you mean " + join(quoted, " or ") + "?");
  }
};

struct Bad {
  std::string what;
};

const ojson& field(const ojson& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end()) throw Bad{std::string("missing field '") + key + "'"};
  return *it;
}

const char* pyType(const ojson& v) {
  switch (v.type()) {
    case ojson::value_t::object: return "dict";
    case ojson::value_t::array: return "list";
    case ojson::value_t::string: return "str";
    case ojson::value_t::boolean: return "bool";
    case ojson::value_t::null: return "NoneType";
    case ojson::value_t::number_float: return "float";
    default: return "int";
  }
}

const ojson& expect(const ojson& v, ojson::value_t t, const char* kind, const std::string& where) {
  const bool ok = v.type() == t || (t == ojson::value_t::number_integer && v.is_number_integer());
  if (!ok) throw Bad{where + " must be a JSON " + kind + ", not " + pyType(v)};
  return v;
}

// Python's truth value of a JSON value (record.get("validity") or None)
bool truthy(const ojson& v) {
  switch (v.type()) {
    case ojson::value_t::null: return false;
    case ojson::value_t::boolean: return v.get<bool>();
    case ojson::value_t::number_float: return v.get<double>() != 0;
    case ojson::value_t::number_integer:
    case ojson::value_t::number_unsigned: return v.get<std::int64_t>() != 0;
    default: return !v.empty();
  }
}

std::string nsOf(const std::string& name) { return name.substr(0, name.find('/')); }
std::string shortOf(const std::string& name) { return name.substr(name.find('/') + 1); }

bool isFile(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
bool isDirPath(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

const char* kRepositoryV1 = "application/vnd.hepbundle.repository.v1+json";
const char* kRepositoryV2 = "application/vnd.hepbundle.repository.v2+json";

// layout.repository_format: 1 or 2 from catalog/repository.json (2 where there is none yet);
// read_repository's checks: a negative or non-integer serial, an unknown media type
int repositoryFormat(const std::string& root, json* doc = nullptr) {
  const std::string path = root + "/catalog/repository.json";
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return 2;
  std::string data;
  try {
    data = readSmallFile(path, kMaxJsonBytes);
  } catch (const ReadError& e) {
    if (e.tooBig) tooBig(path, e.size, kMaxJsonBytes);
    throw FormatError(path + ": " + (e.notRegular ? "not a regular file" : std::strerror(e.err)));
  }
  const json obj = parseJson(data, path);
  if (doc) *doc = obj;
  if (obj.is_object()) {
    auto serial = obj.find("serial");
    if (serial != obj.end() && (!serial->is_number_integer() || (serial->is_number_integer() && serial->get<std::int64_t>() < 0)))
      throw FormatError(path + ": serial must be a non-negative integer, not " + pyrepr(pyStr(*serial).substr(0, 40)),
                        "restore repository.json from the repository's history or a replica");
  }
  const auto mt = obj.is_object() ? obj.find("mediaType") : obj.end();
  if (mt != obj.end() && *mt == kRepositoryV1) return 1;
  if (mt != obj.end() && *mt == kRepositoryV2) return 2;
  const std::string found = (mt == obj.end() || mt->is_null()) ? "None" : mt->is_string() ? pyrepr(mt->get<std::string>()) : mt->dump();
  throw FormatError(path + ": unknown repository format " + found + "; this hepbundle reads " + kRepositoryV1 + " and " + kRepositoryV2,
                    "upgrade hepbundle");
}

// Where the per-name catalogue files are (repository/layout.py, bundle-spec/repository.md):
// format 2 bundles/<ns>/_catalog/<name>.json, format 1 catalog/<ns>/<name>.json
struct Layout {
  std::string root;
  json doc;  // catalog/repository.json (null where there is none)
  int format;

  explicit Layout(std::string r) : root(std::move(r)), format(repositoryFormat(root, &doc)) {}

  std::string recordsDir(const std::string& name) const { return catalogDir(nsOf(name)) + "/" + shortOf(name) + ".records"; }

  // statements.next_serial less one: the serial the last change of name produced and the file
  // keeping it (format 1: repository.json's; format 2: its namespace's namespace.json)
  SerialInfo serialOf(const std::string& name) const {
    SerialInfo out;
    out.repository = doc.is_object() && doc.contains("name") ? (doc["name"].is_string() ? doc["name"].get<std::string>() : pyStr(doc["name"])) : "None";
    if (format == 1) {
      out.file = "catalog/repository.json";
      out.serial = doc.is_object() && doc.contains("serial") ? doc["serial"].get<std::int64_t>() : 0;
      return out;
    }
    const std::string ns = nsOf(name);
    out.ns = ns;
    out.file = "bundles/" + ns + "/_catalog/namespace.json";
    const std::string path = root + "/" + out.file;
    std::string data;
    try {
      data = readSmallFile(path, kMaxJsonBytes);
    } catch (const ReadError& e) {
      if (e.err == ENOENT) return out;
      if (e.tooBig) tooBig(path, e.size, kMaxJsonBytes);
      throw FormatError(path + ": " + (e.notRegular ? "not a regular file" : std::strerror(e.err)));
    }
    const json obj = parseJson(data, path);
    if (!obj.is_object() || obj.value("mediaType", json()) != "application/vnd.hepbundle.namespace.v1+json")
      throw FormatError(path + ": unknown namespace file format", "upgrade hepbundle");
    const json serial = obj.value("serial", json());
    if (!serial.is_number_integer() || serial.get<std::int64_t>() < 0)
      throw FormatError(path + ": serial must be a non-negative integer, not " + pyrepr(pyStr(serial).substr(0, 40)),
                        "restore namespace.json from the repository's history or a replica");
    out.serial = serial.get<std::int64_t>();
    return out;
  }

  std::string catalogDir(const std::string& ns) const {
    return format == 1 ? root + "/catalog/" + ns : root + "/bundles/" + ns + "/_catalog";
  }
  std::string catalogFile(const std::string& name) const { return catalogDir(nsOf(name)) + "/" + shortOf(name) + ".json"; }

  // layout.namespaces: every namespace with a catalogue directory, sorted
  std::vector<std::string> namespaces() const {
    std::vector<std::string> out;
    const std::string base = root + (format == 1 ? "/catalog" : "/bundles");
    DIR* d = opendir(base.c_str());
    if (!d) return out;
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n == "." || n == "..") continue;
      if (format == 1 ? isDirPath(base + "/" + n) : isDirPath(base + "/" + n + "/_catalog")) out.push_back(n);
    }
    closedir(d);
    std::sort(out.begin(), out.end());
    return out;
  }

  // catalog.list_names: every ns/name that has a catalogue file, sorted
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& ns : namespaces()) {
      std::vector<std::string> files;
      if (DIR* dd = opendir(catalogDir(ns).c_str())) {
        while (dirent* e = readdir(dd)) {
          const std::string n = e->d_name;
          if (endsWith(n, ".json") && n[0] != '.' && n != "namespace.json") files.push_back(n.substr(0, n.size() - 5));
        }
        closedir(dd);
      }
      std::sort(files.begin(), files.end());
      for (const auto& f : files) out.push_back(ns + "/" + f);
    }
    return out;
  }
};

bool isRepository(const std::string& root) { return isFile(root + "/catalog/repository.json"); }

NameCatalog readCatalog(const Layout& layout, const std::string& name) {
  const std::string& root = layout.root;
  const std::string path = layout.catalogFile(name);
  std::string data;
  try {
    data = readSmallFile(path, kMaxCatalogBytes);
  } catch (const ReadError& e) {
    if (e.err == ENOENT) {
      if (!isRepository(root))
        throw NotFoundError(root + " is not a hepbundle repository (catalog/repository.json is missing)",
                            "set --repo or HEPBUNDLE_REPO to a repository");
      auto close = closeMatches(name, layout.names(), 3, 0.6);
      std::vector<std::string> q;
      for (const auto& c : close) q.push_back(pyrepr(c));
      throw NotFoundError("no bundle named " + pyrepr(name) + " in repository " + root,
                          close.empty() ? "see: hepbundle find" : "did you mean " + join(q, " or ") + "?");
    }
    if (e.tooBig) tooBig(path, e.size, kMaxCatalogBytes);
    throw FormatError(path + ": " + (e.notRegular ? "not a regular file" : std::strerror(e.err)));
  }
  // parsed with key order kept: the versions' file order shows in hints, as in Python
  ojson obj = parseOrderedJson(data, path);
  const auto mt = obj.is_object() ? obj.find("mediaType") : obj.end();
  if (!obj.is_object() || mt == obj.end() || *mt != kCatalogMediaType) {
    std::string found = (!obj.is_object() || mt == obj.end() || mt->is_null()) ? "None" : mt->is_string() ? pyrepr(mt->get<std::string>()) : mt->dump();
    throw FormatError(path + ": unknown catalogue format " + found + "; this hepbundle reads " + kCatalogMediaType, "upgrade hepbundle");
  }
  NameCatalog cat;
  if (obj.contains("statements")) cat.digest = sha256Hex(data);  // the key of statements.cpp's memo
  std::string where = "name";
  try {
    cat.name = expect(field(obj, "name"), ojson::value_t::string, "str", "name").get<std::string>();
    if (!isNameValid(cat.name)) throw Bad{pyrepr(cat.name) + " is not namespace/name"};
    const ojson& versions = expect(field(obj, "versions"), ojson::value_t::object, "dict", "versions");
    for (auto it = versions.begin(); it != versions.end(); ++it) {
      const std::string v = it.key();
      where = "versions." + v;
      const ojson& r = expect(it.value(), ojson::value_t::object, "dict", where);
      if (!isSemver(v)) throw Bad{pyrepr(v) + " is not a SemVer version"};
      const ojson& d = field(r, "manifestSha256");
      if (!d.is_string() || !isLowerHex(d.get<std::string>(), 64))
        throw Bad{"manifestSha256 " + (d.is_string() ? pyrepr(d.get<std::string>()) : d.dump()) + " is not 64 hex digits"};
      const std::string expectedPath = "bundles/" + nsOf(cat.name) + "/" + shortOf(cat.name) + "/" + v;
      const ojson& p = field(r, "path");
      if (!p.is_string() || p.get<std::string>() != expectedPath)
        throw Bad{"path " + (p.is_string() ? pyrepr(p.get<std::string>()) : p.dump()) + " is not " + pyrepr(expectedPath)};
      for (const char* k : {"created", "published"}) expect(field(r, k), ojson::value_t::string, "str", k);
      for (const char* k : {"authors", "tags", "datasets", "signers"}) {
        auto f = r.find(k);
        if (f == r.end()) continue;
        expect(*f, ojson::value_t::array, "list", k);
        for (const auto& x : *f)
          if (!x.is_string()) throw Bad{std::string(k) + " must be a list of strings"};
      }
      const ojson& y = field(r, "yanked");
      Record rec{v, d.get<std::string>(), std::nullopt, nullptr};
      if (auto val = r.find("validity"); val != r.end() && truthy(*val)) rec.validity = *val;
      if (!y.is_null()) {
        expect(y, ojson::value_t::object, "dict", "yanked");
        rec.yanked = expect(field(y, "reason"), ojson::value_t::string, "str", "yanked.reason").get<std::string>();
        field(y, "time");
      }
      cat.versions.push_back(rec);
    }
    where = "aliases";
    const ojson& aliases = expect(field(obj, "aliases"), ojson::value_t::object, "dict", "aliases");
    for (auto it = aliases.begin(); it != aliases.end(); ++it) {
      const std::string v = it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
      if (!isAlias(it.key()) || !cat.find(v)) throw Bad{"alias " + pyrepr(it.key()) + " -> " + pyrepr(v) + " names no published version"};
      cat.aliases.emplace_back(it.key(), v);
    }
    where = "aliasHistory";
    const ojson& history = expect(field(obj, "aliasHistory"), ojson::value_t::array, "list", where);
    for (const auto& e : history) {
      expect(e, ojson::value_t::object, "dict", where);
      for (const char* k : {"alias", "version", "previous", "time"}) field(e, k);
      for (auto it = e.begin(); it != e.end(); ++it)
        if (it.key() != "alias" && it.key() != "version" && it.key() != "previous" && it.key() != "time" && it.key() != "actor")
          throw Bad{"AliasEvent.__init__() got an unexpected keyword argument " + pyrepr(it.key())};
    }
    where = "statements";
    if (auto st = obj.find("statements"); st != obj.end()) {
      expect(*st, ojson::value_t::array, "list", where);
      for (const auto& x : *st) expect(x, ojson::value_t::object, "dict", where);
      cat.statements = std::move(*st);  // converted (key-sorted) by the statement checks when not memoised
    }
  } catch (const Bad& b) {
    throw FormatError(path + ": " + where + ": " + b.what);
  }
  if (cat.name != name) throw FormatError(path + ": describes " + pyrepr(cat.name) + ", expected " + pyrepr(name));
  return cat;
}

// resolver.not_found: "no such repository" when no entry of the search path is one, else the
// closest catalogued names of the repositories and the entries that are not repositories
NotFoundError notFound(const std::string& name, const std::vector<std::string>& rootsIn) {
  std::vector<std::string> roots, real, absent;
  for (const auto& r : rootsIn) {
    roots.push_back(posixPath(r));
    (isRepository(roots.back()) ? real : absent).push_back(roots.back());
  }
  const std::string where = join(roots, ", ");
  if (real.empty())
    return NotFoundError(std::string(roots.size() == 1 ? "no such repository" : "no such repositories") + ": " + where +
                             " (looking for " + pyrepr(name) + ")",
                         "check HEPBUNDLE_PATH / --repo: each entry is a repository directory "
                         "(catalog/repository.json), e.g. /cvmfs/<repo>");
  std::vector<std::string> names;
  for (const auto& r : real)
    for (auto& n : Layout(r).names()) names.push_back(std::move(n));
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::vector<std::string> hints, quoted;
  for (const auto& c : closeMatches(name, names, 3, 0.6)) quoted.push_back(pyrepr(c));
  if (!quoted.empty()) hints.push_back("did you mean " + join(quoted, " or ") + "?");
  if (!absent.empty()) hints.push_back("not a repository: " + join(absent, ", "));
  hints.push_back("search with: hepbundle find");
  return NotFoundError("no bundle named " + pyrepr(name) + " in " + where, join(hints, "; "));
}

struct ParsedRef {
  std::optional<std::string> path, name, selector;
};

bool exists(const std::string& p) {
  struct stat st {};
  return p.find('\0') == std::string::npos && stat(p.c_str(), &st) == 0;
}

ParsedRef parseRef(const std::string& text) {
  if (text.empty()) throw NotFoundError("empty bundle reference");
  // a string that parses as a catalogue reference is one, whatever the working directory holds;
  // a bundle directory is written as a path (/…, ./…, ~…) or is anything that is no reference
  if (text[0] == '/' || text[0] == '.' || text[0] == '~') {
    std::string expanded = text;
    if (expanded == "~" || startsWith(expanded, "~/")) expanded = envOr("HOME") + expanded.substr(1);
    return {expanded, std::nullopt, std::nullopt};
  }
  const auto at = text.find('@');
  const std::string name = text.substr(0, at);
  if (isNameValid(name)) {
    if (at == std::string::npos) return {std::nullopt, name, std::nullopt};
    const std::string selector = text.substr(at + 1);
    if (!(isSemver(selector) || isAlias(selector)))
      throw NotFoundError(pyrepr(text) + ": " + pyrepr(selector) + " is neither a SemVer version nor an alias name",
                          "write ns/name@1.2.0 or ns/name@prod" + (exists(text) ? ", or ./" + text + " for the directory" : ""));
    return {std::nullopt, name, selector};
  }
  if (exists(text)) return {text, std::nullopt, std::nullopt};
  throw NotFoundError(pyrepr(text) + " is neither an existing path nor a bundle reference",
                      "write ns/name@version, ns/name@alias, ns/name, or a bundle directory");
}

std::vector<std::string> searchPath(const Options& o) {
  if (!o.repos.empty()) return o.repos;
  const std::string env = envOr("HEPBUNDLE_PATH");
  std::vector<std::string> out;
  if (!env.empty()) {
    std::size_t start = 0;
    while (true) {
      auto pos = env.find(':', start);
      std::string p = env.substr(start, pos - start);
      if (!p.empty()) out.push_back(p);
      if (pos == std::string::npos) break;
      start = pos + 1;
    }
    if (!out.empty()) return out;
  }
  const std::string repo = envOr("HEPBUNDLE_REPO");
  if (!repo.empty()) return {repo};
  if (isDirPath("hepbundle-repo")) return {"hepbundle-repo"};
  throw NotFoundError("no repository to search", "set HEPBUNDLE_PATH=/cvmfs/<repo>:<other> or pass --repo");
}

}  // namespace

}  // namespace detail

Bundle resolve(const std::string& ref, const Options& options) {
  using namespace detail;
  // a policy named by the caller is read first, as Python's caller loads it (TrustPolicy.load)
  const PolicyPtr given = options.policy.empty() ? nullptr : loadPolicy(options.policy);
  const ParsedRef parsed = parseRef(ref);
  if (parsed.path) {
    Bundle b = openWith(*parsed.path, options, given);
    checkScope(b, options, false);
    return b;
  }
  const std::string& name = *parsed.name;
  // ns/name@valid: chosen by the scopes the catalogue records, for the job's context (required)
  const bool valid = parsed.selector && *parsed.selector == "valid";
  Context ctx;
  if (valid) {
    ctx = jobContext(options);
    if (ctx.empty())
      throw UsageError(ref + ": @valid picks the version whose validity scope covers the job's context, and no context was given",
                       "pass --context run=456789,release=CMSSW_15_0_3 (context= in Python, or HEPBUNDLE_CONTEXT)");
  }
  const auto roots = searchPath(options);
  std::optional<NotFoundError> first;
  for (const auto& rootIn : roots) {
    const std::string root = posixPath(rootIn);
    const Layout layout(root);
    if (!isFile(layout.catalogFile(name))) continue;
    const Record* rec = nullptr;
    NameCatalog cat;
    try {
      cat = readCatalog(layout, name);
      rec = valid ? &cat.validFor(ctx) : &cat.resolve(parsed.selector);
    } catch (const NotFoundError& e) {
      if (!first) first = e;
      continue;
    }
    if (rec->yanked) {
      const std::string msg = name + "@" + rec->version + " is yanked: " + *rec->yanked;
      if (!options.allowYanked) throw YankedError(msg, "pin another version, or pass allow_yanked=True / --allow-yanked");
      log(options, LogLevel::Warning, msg + " (allowed)");
    }
    if (parsed.selector != rec->version) log(options, LogLevel::Info, "resolved " + ref + " to " + name + "@" + rec->version + " in " + root);
    PolicyPtr chosen;
    if (options.verify != Verify::Integrity && options.verify != Verify::None) {
      // resolver._repository_policy: the policy given, else HEPBUNDLE_POLICY, else the trust root
      chosen = given ? given : policyFromEnv();
      if (!chosen && hasTrustRoot(root))
        if (auto found = trustRootFor(root)) chosen = found->policy;
      if (!chosen) throw noPolicyError(name + "@" + rec->version + " in " + root + " (the repository has no trust root)");
      // the signed statements behind the version or alias, and the approvals it needs; @valid chose
      // by the catalogue's unsigned scopes, so its version is checked as if pinned (_signed_selector)
      const std::optional<std::string> selector = valid ? std::optional<std::string>(rec->version) : parsed.selector;
      CatalogEntry entry{name, rec->version, rec->digest, rec->yanked.has_value(), selector,
                         selector && cat.hasAlias(*selector), &cat.statements, cat.digest};
      if (signsCatalog(*chosen, name)) checkCatalogStatements(entry, chosen, layout.serialOf(name), options);
      checkApprovals(layout.recordsDir(name), entry, *chosen, options);
    }
    Bundle b = openWith(root + "/bundles/" + name + "/" + rec->version, options, chosen);
    if (b.manifestDigest() != rec->digest)
      throw VerificationError(b.ref() + " in " + root + ": manifest digest sha256:" + b.manifestDigest().substr(0, 16) +
                                  "… differs from the catalogue's sha256:" + rec->digest.substr(0, 16) + "…",
                              "the bundle directory was changed behind the catalogue; do not use it");
    if (b.name() != name || b.version() != rec->version)
      throw VerificationError(root + ": catalogue entry " + name + "@" + rec->version + " holds " + b.ref());
    // the scope judged on the verified manifest; for @valid (the catalogue's record is not signed)
    // it must cover the context
    checkScope(b, options, valid);
    return b;
  }
  if (first) {
    // a catalogue reference that also names a directory here: say how to mean the directory
    const std::string shownRef = name + (parsed.selector ? "@" + *parsed.selector : "");
    if (exists(shownRef))
      throw NotFoundError(first->message(), "./" + shownRef + " is a directory here; write ./" + shownRef +
                                                " to open it instead of the catalogue entry");
    throw *first;
  }
  throw notFound(name, roots);
}

}  // namespace hepbundle
