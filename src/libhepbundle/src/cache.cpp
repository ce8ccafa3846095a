// The node verification cache, shared with Python (src/hepbundle/cache.py,
// docs/verification-cache.md): <dir>/verified/<d[:2]>/<digest>.json maps a payload path to
// [sha256, dev, ino, size, mtime_ns, ctime_ns, cvmfs-attributes-or-null]; trusted only when this
// user owns it and nobody else can write it; CVMFS extended attributes count only on cvmfs2 mounts.
#include <fcntl.h>
#include <limits.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "internal.hpp"

namespace hepbundle::detail {

// CernVM-FS mount points, longest first: a client's fuse from cvmfs2, or a Stratum-0's repository
// FUSE mount at /var/spool/cvmfs/<R>/rdonly (source <R>) and the read-only overlay /cvmfs/<R>
// over it (only while no transaction is open), as src/hepbundle/cache.py parse_mountinfo.
std::vector<std::string> parseMountinfo(const std::string& text) {
  std::vector<std::string> mounts;
  std::vector<std::pair<std::string, std::string>> overlays;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto sep = line.find(" - ");
    if (sep == std::string::npos) continue;
    std::istringstream left(line.substr(0, sep)), right(line.substr(sep + 3));
    std::vector<std::string> lf, rf;
    for (std::string w; left >> w;) lf.push_back(w);
    for (std::string w; right >> w;) rf.push_back(w);
    if (lf.size() < 6 || rf.size() < 2) continue;
    std::string point = lf[4];
    for (std::size_t p; (p = point.find("\\040")) != std::string::npos;) point.replace(p, 4, " ");
    if ((rf[0] == "fuse" || rf[0] == "fuse.cvmfs2") && (rf[1] == "cvmfs2" || endsWith(point, "/cvmfs/" + rf[1] + "/rdonly"))) {
      mounts.push_back(point);
    } else if (rf[0] == "overlay" && rf.size() >= 3) {
      bool ro = false;
      std::istringstream opts(lf[5]);
      for (std::string o; std::getline(opts, o, ',');) ro = ro || o == "ro";
      if (!ro) continue;
      std::string lower;
      std::istringstream super(rf[2]);
      for (std::string o; std::getline(super, o, ',');)
        if (startsWith(o, "lowerdir=")) lower = o.substr(9);
      overlays.emplace_back(point, lower);
    }
  }
  const std::vector<std::string> fuse = mounts;
  for (const auto& [point, lower] : overlays)
    if (std::find(fuse.begin(), fuse.end(), lower) != fuse.end()) mounts.push_back(point);
  std::stable_sort(mounts.begin(), mounts.end(), [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return mounts;
}

namespace {
const std::vector<std::string>& cvmfsMounts() {
  static const std::vector<std::string> mounts = [] {
    std::ifstream f("/proc/self/mountinfo");
    std::stringstream ss;
    ss << f.rdbuf();
    return parseMountinfo(ss.str());
  }();
  return mounts;
}
}  // namespace

std::optional<std::string> cvmfsMountOf(const std::string& path) {
  const auto& mounts = cvmfsMounts();
  if (mounts.empty()) return std::nullopt;
  char buf[PATH_MAX];
  const std::string real = ::realpath(path.c_str(), buf) ? std::string(buf) : path;
  for (const auto& m : mounts) {
    std::string base = m;
    while (base.size() > 1 && base.back() == '/') base.pop_back();
    if (real == m || startsWith(real, base + "/")) return m;
  }
  return std::nullopt;
}

json cvmfsKey(const std::string& path) {
  if (!cvmfsMountOf(path)) return nullptr;
  std::vector<std::string> out;
  for (const char* name : {"user.fqrn", "user.revision", "user.hash", "user.chunk_list"}) {
    std::string value;
    ssize_t n = getxattr(path.c_str(), name, nullptr, 0);
    if (n > 0) {
      value.resize(static_cast<std::size_t>(n));
      n = getxattr(path.c_str(), name, &value[0], value.size());
      value.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    }
    out.push_back(value);
  }
  if (out[0].empty() || out[1].empty() || (out[2].empty() && out[3].empty())) return nullptr;
  return out;
}

VerificationCache::VerificationCache(std::string directory) : dir_(std::move(directory)) {}

std::string VerificationCache::file(const std::string& d) const {
  return dir_ + "/verified/" + d.substr(0, 2) + "/" + d + ".json";
}

json& VerificationCache::entries(const std::string& d) {
  auto it = loaded_.find(d);
  if (it != loaded_.end()) return it->second;
  json data = json::object();
  const std::string path = file(d);
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 && st.st_uid == getuid() && !(st.st_mode & 022)) {
    try {
      json parsed = parseJson(readSmallFile(path, kMaxCatalogBytes), path);
      if (parsed.is_object()) data = std::move(parsed);
    } catch (...) {
      // unreadable or corrupt: hash instead
    }
  }
  return loaded_[d] = std::move(data);
}

namespace {
json keyOf(const std::string& digest, const std::string& path, const struct stat& st) {
  const auto ns = [](const timespec& t) {
    return static_cast<std::int64_t>(t.tv_sec) * 1000000000LL + static_cast<std::int64_t>(t.tv_nsec);
  };
  return json::array({digest, static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
                      static_cast<std::int64_t>(st.st_size), ns(st.st_mtim), ns(st.st_ctim), cvmfsKey(path)});
}
}  // namespace

bool VerificationCache::isVerified(const std::string& d, const std::string& relpath, const std::string& digest,
                                   const std::string& path, const struct stat& st) {
  json entry;
  {
    std::lock_guard<std::mutex> g(lock_);
    const json& e = entries(d);
    auto it = e.find(relpath);
    if (it == e.end()) return false;
    entry = *it;
  }
  return entry == keyOf(digest, path, st);
}

void VerificationCache::record(const std::string& d, const std::vector<Item>& items) {
  if (items.empty()) return;
  std::lock_guard<std::mutex> g(lock_);
  json& e = entries(d);
  for (const auto& it : items) e[it.relpath] = keyOf(it.digest, it.path, it.st);
  const std::string target = file(d);
  const std::string parent = dirName(target);
  // mkdir -p with 0700, then make the top private (as Python does)
  for (std::size_t pos = dir_.size(); pos != std::string::npos; pos = parent.find('/', pos + 1)) {
    mkdir(parent.substr(0, pos).c_str(), 0700);
    if (pos >= parent.size()) break;
  }
  mkdir(dir_.c_str(), 0700);
  mkdir((dir_ + "/verified").c_str(), 0700);
  mkdir(parent.c_str(), 0700);
  chmod(dir_.c_str(), 0700);
  writeFileAtomic(target, e.dump());  // not writable: continue without it
}

std::shared_ptr<VerificationCache> defaultCache() {
  if (!envOr("HEPBUNDLE_NO_CACHE").empty()) return nullptr;
  return std::make_shared<VerificationCache>(cacheDirectory());
}

}  // namespace hepbundle::detail
