// hepbundle.json, format v1 (bundle-spec/README.md § 5, v1/manifest.schema.json): parsed and
// checked with the rules a reader relies on, with the messages of src/hepbundle/manifest.py.
#include <set>

#include "internal.hpp"

namespace hepbundle::detail {

namespace {

const char* kMediaTypeV1 = "application/vnd.hepbundle.manifest.v1+json";
const std::set<std::string> kRoles = {"model",  "weights", "firmware", "bitstream", "report",
                                      "docs",   "data",    "config",   "code",      "other"};

[[noreturn]] void fail(const std::string& source, const std::string& field, const std::string& what) {
  throw FormatError(source + ": " + field + ": " + what);
}

void expectType(const json& obj, const char* key, json::value_t t, const std::string& source) {
  auto it = obj.find(key);
  if (it == obj.end()) return;
  const bool ok = it->type() == t;
  if (!ok) {
    const char* want = t == json::value_t::string ? "string" : t == json::value_t::array ? "array" : "object";
    fail(source, key, it->dump().substr(0, 80) + " is not of type " + pyrepr(want));
  }
}

void checkStringArray(const json& obj, const char* key, const std::string& source) {
  expectType(obj, key, json::value_t::array, source);
  auto it = obj.find(key);
  if (it == obj.end()) return;
  for (std::size_t i = 0; i < it->size(); ++i)
    if (!(*it)[i].is_string())
      fail(source, std::string(key) + "[" + std::to_string(i) + "]", "is not of type 'string'");
}

void checkObjectArray(const json& obj, const char* key, std::initializer_list<const char*> required,
                      const std::string& source) {
  expectType(obj, key, json::value_t::array, source);
  auto it = obj.find(key);
  if (it == obj.end()) return;
  for (std::size_t i = 0; i < it->size(); ++i) {
    const std::string where = std::string(key) + "[" + std::to_string(i) + "]";
    if (!(*it)[i].is_object()) fail(source, where, "is not of type 'object'");
    for (const char* r : required)
      if (!(*it)[i].contains(r)) fail(source, where + "." + r, "required field is missing");
  }
}

void checkTop(const json& obj, const std::string& source) {
  for (const char* key : {"mediaType", "name", "version", "created", "hashing", "files"})
    if (!obj.contains(key)) fail(source, key, "required field is missing");
  const json& name = obj["name"];
  if (!name.is_string() || !isNameValid(name.get<std::string>()))
    fail(source, "name", name.dump().substr(0, 200) + " is invalid: namespace/name, lowercase [a-z0-9._-].");
  const json& version = obj["version"];
  if (!version.is_string() || !isSemver(version.get<std::string>()))
    fail(source, "version",
         version.dump().substr(0, 200) +
             " is invalid: a SemVer 2.0.0 version such as 1.2.0, 0.3.0-rc.1 or 1.0.0+build.5");
  const json& created = obj["created"];
  if (!created.is_string() || !parseUtc(created.get<std::string>()))
    fail(source, "created", created.dump().substr(0, 200) + " is invalid: must match ^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}Z$");
  const json& hashing = obj["hashing"];
  if (!hashing.is_object()) fail(source, "hashing", "is not of type 'object'");
  for (const char* key : {"algorithm", "ignore", "symlinks"})
    if (!hashing.contains(key)) fail(source, std::string("hashing.") + key, "required field is missing");
  if (hashing["algorithm"] != "sha256" && hashing["algorithm"] != "blake3")
    fail(source, "hashing.algorithm", "unknown digest algorithm " + hashing["algorithm"].dump() + "; this hepbundle knows blake3, sha256");
  checkStringArray(hashing, "ignore", source + ": hashing");
  if (hashing["symlinks"] != "refuse") fail(source, "hashing.symlinks", "'refuse' was expected");
  for (const char* key : {"summary", "description", "license", "framework", "modelCard"})
    expectType(obj, key, json::value_t::string, source);
  checkStringArray(obj, "tags", source);
  checkObjectArray(obj, "authors", {"name"}, source);
  checkObjectArray(obj, "metrics", {"name", "value"}, source);
  for (const char* key : {"hyperparameters", "profile", "extra", "builder", "provenance", "fpga"})
    expectType(obj, key, json::value_t::object, source);
  for (const char* key : {"data", "parents"}) expectType(obj, key, json::value_t::array, source);
  if (obj.contains("builder"))
    for (const char* key : {"name", "version"}) expectType(obj["builder"], key, json::value_t::string, source + ": builder");
}

void checkFiles(const json& files, const std::string& alg, const std::string& source) {
  if (!files.is_array()) throw FormatError(source + ": files: must be a list");
  if (files.size() > kMaxManifestFiles)  // before any entry is examined
    throw FormatError(source + ": " + thousands(files.size()) + " file entries, over the limit of " + thousands(kMaxManifestFiles),
                      "see bundle-spec/README.md § Limits");
  const std::set<std::string> allowed = {"path", "size", alg, "role", "legacyPath"};
  for (std::size_t i = 0; i < files.size(); ++i) {
    const std::string where = source + ": files[" + std::to_string(i) + "]";
    const json& f = files[i];
    if (!f.is_object()) throw FormatError(where + ": must be an object");
    bool exact = f.contains("path") && f.contains("size") && f.contains(alg) && f.contains("role");
    for (auto it = f.begin(); it != f.end(); ++it)
      if (!allowed.count(it.key())) exact = false;
    if (!exact) {
      std::string why;
      for (const char* other : {"blake3", "sha256"})
        if (other != alg && f.contains(other)) {
          why = std::string(" (a ") + other + " digest in a " + alg + " manifest)";
          break;
        }
      throw FormatError(where + ": must have exactly path, size, " + alg + ", role (and legacyPath)" + why);
    }
    if (!f["path"].is_string() || f["path"].get<std::string>().empty())
      throw FormatError(where + ".path: must be a non-empty string");
    if (!(f["size"].is_number_unsigned() || (f["size"].is_number_integer() && f["size"].get<std::int64_t>() >= 0)))
      throw FormatError(where + ".size: must be a non-negative integer");
    if (!f[alg].is_string() || !isLowerHex(f[alg].get<std::string>(), 64))
      throw FormatError(where + "." + alg + ": must be 64 lowercase hex digits");
    if (!f["role"].is_string() || !kRoles.count(f["role"].get<std::string>()))
      throw FormatError(where + ".role: " + (f["role"].is_string() ? pyrepr(f["role"].get<std::string>()) : f["role"].dump()) +
                        " is not a known role");
    if (f.contains("legacyPath")) {
      if (!f["legacyPath"].is_string()) throw FormatError(where + ".legacyPath: must be a string");
      try {
        checkRelpath(f["legacyPath"].get<std::string>());
      } catch (const PathError& e) {
        throw FormatError(where + ".legacyPath: " + e.what());
      }
    }
  }
}

}  // namespace

Manifest parseManifest(const std::string& bytes, const std::string& source) {
  const json obj = parseJson(bytes, source);
  if (!obj.is_object()) throw FormatError(source + ": a manifest must be a JSON object");
  auto mt = obj.find("mediaType");
  if (mt == obj.end() || !mt->is_string() || mt->get<std::string>() != kMediaTypeV1) {
    std::string shown = mt == obj.end() || mt->is_null() ? "None"
                        : mt->is_string()                ? pyrepr(mt->get<std::string>())
                                                         : mt->dump();
    throw FormatError(source + ": unknown manifest media type " + shown + "; this hepbundle reads " + kMediaTypeV1,
                      "upgrade hepbundle to read newer formats");
  }
  checkTop(obj, source);
  const std::string alg = obj["hashing"]["algorithm"].get<std::string>();
  checkFiles(obj["files"], alg, source);
  Manifest m;
  m.mediaType = kMediaTypeV1;
  m.name = obj["name"].get<std::string>();
  m.version = obj["version"].get<std::string>();
  m.created = obj["created"].get<std::string>();
  m.algorithm = algorithmFromName(obj["hashing"]["algorithm"].get<std::string>());
  if (auto v = obj.find("validity"); v != obj.end()) {
    checkValiditySchema(*v, source + ": validity");  // refused at open, as Python's schema check does
    m.validity = *v;  // its scope's own rules are judged against a context at resolve
  }
  if (auto io = obj.find("io"); io != obj.end()) {
    readIOSignature(*io, source);  // refused at open, as Python's schema check does
    m.io = *io;
  }
  std::vector<std::string> paths;
  for (const json& f : obj["files"]) {
    FileEntry e;
    e.path = f["path"].get<std::string>();
    e.size = f["size"].get<std::uint64_t>();
    e.digest = f[alg].get<std::string>();
    e.role = f["role"].get<std::string>();
    checkRelpath(e.path);
    if (isReserved(e.path)) throw FormatError("manifest lists reserved file " + pyrepr(e.path) + " as payload");
    paths.push_back(e.path);
    m.files.push_back(std::move(e));
  }
  checkCollisions(paths);
  for (std::size_t i = 0; i < m.files.size(); ++i) m.index[m.files[i].path] = i;
  return m;
}

}  // namespace hepbundle::detail
