// Which trust policy judges a bundle (src/hepbundle/load.py _policy_for, policy.py
// policy_from_env, repository/trust.py; bundle-spec/repository.md § 5a): the policy the caller
// names, else HEPBUNDLE_POLICY (set but empty or unreadable is an error), else the trust root
// catalog/trust.json of the repository the bundle is in, accepted only when the site pins it
// (HEPBUNDLE_TRUST_ROOT), it is on a cvmfs2 client mount, or this node accepted it once
// (known-repositories.json in the node cache, written by `hepbundle repo trust`). Without any of
// them the bundle is refused: trust by default.
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <list>

#include "sig.hpp"

namespace hepbundle::detail {

namespace {

const char* kPolicyEnv = "HEPBUNDLE_POLICY";
const char* kTrustRootEnv = "HEPBUNDLE_TRUST_ROOT";
const char* kTrustRootFile = "catalog/trust.json";
const char* kTrustLogFile = "catalog/trust-log.jsonl";
const char* kTrustRootMediaType = "application/vnd.hepbundle.trust-root.v1+json";
constexpr std::size_t kMaxTrustRootBytes = 4u << 20;

const char* kConfigureTrustHint =
    "configure trust: publish into a repository with a trust root (hepbundle repo init --policy FILE), set "
    "HEPBUNDLE_POLICY=FILE or pass --policy/--key; or ask for integrity checks only by name (verify='integrity', "
    "--integrity-only)";

bool isSet(const char* name) { return std::getenv(name) != nullptr; }

std::string strip(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\n\r\f\v");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\n\r\f\v") - b + 1);
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// trust._pins: the digests HEPBUNDLE_TRUST_ROOT pins, or nullopt when it is unset
std::optional<std::vector<std::string>> pins() {
  if (!isSet(kTrustRootEnv)) return std::nullopt;
  const std::string raw = envOr(kTrustRootEnv);
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const auto comma = raw.find(',', start);
    const std::string item = strip(raw.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (!item.empty()) {
      if (startsWith(item, "sha256:") && item.size() == 71) {
        out.push_back(lower(item));
      } else {
        try {
          out.push_back("sha256:" + sha256Hex(readSmallFile(item, kMaxTrustRootBytes)));
        } catch (const ReadError& e) {
          throw PolicyError(std::string(kTrustRootEnv) + ": cannot read " + item + ": " +
                                (e.err ? std::strerror(e.err) : e.tooBig ? "too large" : "not a regular file"),
                            "list sha256:<hex> digests or trust root files, separated by commas");
        }
      }
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (out.empty()) throw PolicyError(std::string(kTrustRootEnv) + " is set but names no trust root");
  return out;
}

std::string knownRepositoriesFile() { return cacheDirectory() + "/known-repositories.json"; }

// trust._known: the trust roots this node accepted, by repository name
json known() {
  const std::string path = knownRepositoriesFile();
  std::string data;
  try {
    data = readSmallFile(path, kMaxJsonBytes);
  } catch (const ReadError& e) {
    if (e.err == ENOENT) return json::object();
    throw PolicyError(path + " is unreadable (" + (e.err ? std::strerror(e.err) : "not a regular file") + "); accepted trust roots unknown",
                      "repair or remove it, then accept repositories again: hepbundle repo trust");
  }
  json obj;
  try {
    obj = parseJson(data, path);
  } catch (const FormatError& e) {
    throw PolicyError(path + " is unreadable (" + e.message() + "); accepted trust roots unknown",
                      "repair or remove it, then accept repositories again: hepbundle repo trust");
  }
  return obj.is_object() ? obj : json::object();
}

// trust._parse: the repository name and the policy of a trust root document
std::pair<std::string, std::shared_ptr<const TrustPolicy>> parseTrustRoot(const std::string& root, const std::string& data) {
  const std::string where = root + "/" + kTrustRootFile;
  const json obj = parseJson(data, where);
  if (!obj.is_object()) throw SpecError(where + ": (top level): not of type 'object'");
  for (auto it = obj.begin(); it != obj.end(); ++it)
    if (it.key() != "mediaType" && it.key() != "repository" && it.key() != "policy")
      throw SpecError(where + ": " + it.key() + ": unknown key");
  for (const char* k : {"mediaType", "repository", "policy"})
    if (!obj.contains(k)) throw SpecError(where + ": " + k + ": required field is missing");
  if (obj["mediaType"] != kTrustRootMediaType)
    throw SpecError(where + ": mediaType: " + kTrustRootMediaType + " was expected");
  const json& repo = obj["repository"];
  if (!repo.is_string() || repo.get<std::string>().empty())
    throw SpecError(where + ": repository: " + repo.dump() + " is not a non-empty string");
  return {repo.get<std::string>(), policyFromDocument(data, "policy", where, root + "/catalog")};
}

// the acceptance decision, once per process for the same file, pins and accepted list
// (trust._cached); a bounded memo, the only state kept beside the node cache
struct Memo {
  std::mutex lock;
  std::list<std::pair<std::string, TrustRoot>> entries;  // newest first
};
Memo& memo() {
  static Memo m;
  return m;
}

TrustRoot decide(const std::string& root, const std::string& digest, const std::string& data) {
  const auto pinned = pins();
  auto [name, policy] = parseTrustRoot(root, data);
  if (pinned) {
    if (std::find(pinned->begin(), pinned->end(), digest) == pinned->end())
      throw PolicyError("trust root of " + root + " is " + digest + ", which " + kTrustRootEnv + " does not pin",
                        "the repository's trust policy changed, or this is not the repository the site pinned: ask its operator, then "
                        "update the pin");
    return {name, root, digest, policy, "pinned"};
  }
  if (cvmfsMountOf(root + "/" + kTrustRootFile)) return {name, root, digest, policy, "cvmfs"};
  const json all = known();
  auto it = all.find(name);
  if (it == all.end() || !it->is_object())
    throw PolicyError("the trust root of repository " + pyrepr(name) + " (" + root + ") is not accepted on this node",
                      "check its digest " + digest + " with the repository operator, then accept it once with: hepbundle repo trust " +
                          root + "   (or pin it: " + kTrustRootEnv + "=" + digest + ")");
  const json sha = it->value("sha256", json()), accepted = it->value("accepted", json());
  if (sha != digest)
    throw PolicyError("the trust root of repository " + pyrepr(name) + " (" + root + ") CHANGED: it is " + digest +
                          ", this node accepted " + pyStr(sha) + " on " + pyStr(accepted),
                      std::string("someone may be impersonating the repository; if its operator changed the trust policy (see ") +
                          kTrustLogFile + "), accept it again: hepbundle repo trust " + root);
  return {name, root, digest, policy, "accepted"};
}

}  // namespace

std::string cacheDirectory() {
  std::string dir = envOr("HEPBUNDLE_CACHE_DIR");
  if (dir.empty()) dir = envOr("HEPBUNDLE_CACHE");  // deprecated spelling, as config.cache_dir
  if (!dir.empty()) return dir;
  std::string xdg = envOr("XDG_CACHE_HOME");
  if (xdg.empty()) {
    std::string home = envOr("HOME");
    if (home.empty())
      if (const passwd* pw = getpwuid(getuid())) home = pw->pw_dir;
    xdg = home + "/.cache";
  }
  return xdg + "/hepbundle";
}

PolicyError noPolicyError(const std::string& what) {
  return PolicyError(what + ": no trust policy configured, refusing it (signatures cannot be checked)", kConfigureTrustHint);
}

std::shared_ptr<const TrustPolicy> policyFromEnv() {
  if (!isSet(kPolicyEnv)) return nullptr;
  const std::string path = envOr(kPolicyEnv);
  if (strip(path).empty())
    throw PolicyError(std::string(kPolicyEnv) + " is set but empty", std::string("point ") + kPolicyEnv + " at a trust policy file, or unset it");
  try {
    return loadPolicy(path);
  } catch (const SpecError& e) {
    throw PolicyError(std::string(kPolicyEnv) + "=" + path + ": " + e.message(), e.hint());
  }
}

std::optional<TrustRoot> trustRootFor(const std::string& repoRoot) {
  const std::string root = absolutePath(repoRoot);
  const std::string path = root + "/" + kTrustRootFile;
  std::string data;
  try {
    data = readSmallFile(path, kMaxTrustRootBytes);
  } catch (const ReadError& e) {
    if (e.err == ENOENT) return std::nullopt;
    if (e.tooBig) throw FormatError(path + ": larger than 4 MiB; not a trust root");
    throw PolicyError("cannot read the trust root " + path + ": " + (e.err ? std::strerror(e.err) : "not a regular file"));
  }
  const std::string digest = "sha256:" + sha256Hex(data);
  struct stat st {};
  const std::string knownFile = knownRepositoriesFile();
  // a new acceptance replaces the file (new inode) and moves its mtime
  const std::string mtime = stat(knownFile.c_str(), &st) == 0 ? std::to_string(st.st_ino) + ":" + std::to_string(st.st_mtim.tv_sec) +
                                                                    "." + std::to_string(st.st_mtim.tv_nsec)
                                                              : "0";
  const char* pin = std::getenv(kTrustRootEnv);
  const std::string key = root + '\0' + digest + '\0' + (pin ? std::string("1") + pin : "0") + '\0' + knownFile + '\0' + mtime;
  Memo& m = memo();
  {
    std::lock_guard<std::mutex> g(m.lock);
    for (const auto& [k, v] : m.entries)
      if (k == key) return v;
  }
  TrustRoot found = decide(root, digest, data);
  std::lock_guard<std::mutex> g(m.lock);
  m.entries.emplace_front(key, found);
  if (m.entries.size() > 16) m.entries.pop_back();
  return found;
}

bool hasTrustRoot(const std::string& repoRoot) {
  struct stat st {};
  return stat((repoRoot + "/" + kTrustRootFile).c_str(), &st) == 0;
}

std::optional<std::string> repositoryOfDir(const std::string& dir, const std::string& name, const std::string& version) {
  // layout.repository_of_dir: <repo>/bundles/<ns>/<name>/<version>, and <repo> is a repository
  if (!isNameValid(name)) return std::nullopt;
  const std::string tail = "/bundles/" + name + "/" + version;
  if (dir.size() <= tail.size() || !endsWith(dir, tail)) return std::nullopt;
  std::string repo = dir.substr(0, dir.size() - tail.size());
  if (repo.empty()) repo = "/";
  struct stat st {};
  if (stat((repo + "/catalog/repository.json").c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return repo;
}

}  // namespace hepbundle::detail
