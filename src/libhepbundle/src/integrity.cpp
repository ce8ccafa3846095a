// Integrity verification (src/hepbundle/integrity.py): compare a bundle directory with its
// manifest, reporting every problem at once; hashing runs in parallel across files.
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <thread>

#include "internal.hpp"

namespace hepbundle {

std::string Problem::str() const { return kind + " " + path + (detail.empty() ? "" : " (" + detail + ")"); }

void IntegrityReport::raiseForProblems(const std::string& what) const {
  if (problems.empty()) return;
  std::vector<std::string> listed;
  for (std::size_t i = 0; i < problems.size() && i < 20; ++i) listed.push_back(problems[i].str());
  std::string more = problems.size() > 20 ? "; … and " + std::to_string(problems.size() - 20) + " more" : "";
  throw IntegrityError(what + " failed integrity verification: " + detail::join(listed, "; ") + more);
}

namespace detail {

namespace {

struct ToHash {
  const FileEntry* entry;
  std::string path;
  struct stat st;
};

// the cheap checks (path rules, presence, not a symlink, size); true if the file is to be hashed
bool precheck(Resolver& resolve, const FileEntry& e, std::vector<Problem>& problems, ToHash& out) {
  std::string p;
  try {
    p = resolve(e.path);
  } catch (const PathError& err) {
    problems.push_back({"path", e.path, err.what()});
    return false;
  }
  struct stat st {};
  if (lstat(p.c_str(), &st) != 0) {
    if (errno == ENOENT) problems.push_back({"missing", e.path, ""});
    else problems.push_back({"missing", e.path, std::string("unreadable: ") + std::strerror(errno)});
    return false;
  }
  if (S_ISLNK(st.st_mode)) {
    const char* where = resolve.escapes(e.path) ? "outside the bundle" : "inside the bundle";
    problems.push_back({"path", e.path, std::string("is a symlink pointing ") + where + "; bundles hold regular files only"});
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    // a FIFO would block the reader forever, /dev/zero never ends, /dev/null reads as empty
    problems.push_back({"path", e.path, "is " + describeMode(st.st_mode) + "; bundles hold regular files only"});
    return false;
  }
  if (static_cast<std::uint64_t>(st.st_size) != e.size) {
    problems.push_back({"modified", e.path, "size " + std::to_string(st.st_size) + " != " + std::to_string(e.size)});
    return false;
  }
  out = {&e, p, st};
  return true;
}

void scanExtra(const std::string& root, const std::string& relDir, const Manifest& m,
               std::vector<Problem>& problems, int depth) {
  if (depth > 256) return;
  const std::string dir = relDir.empty() ? root : root + "/" + relDir;
  DIR* d = opendir(dir.c_str());
  if (!d) return;  // like os.walk: an unreadable directory is skipped
  std::vector<std::string> files, linkedDirs, subdirs;
  while (dirent* ent = readdir(d)) {
    const std::string n = ent->d_name;
    if (n == "." || n == "..") continue;
    const std::string full = dir + "/" + n;
    struct stat lst {}, st {};
    if (lstat(full.c_str(), &lst) != 0) continue;
    const bool isDir = stat(full.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    if (isDir && S_ISLNK(lst.st_mode)) linkedDirs.push_back(n);
    else if (isDir) subdirs.push_back(n);
    else files.push_back(n);
  }
  closedir(d);
  std::sort(files.begin(), files.end());
  std::sort(linkedDirs.begin(), linkedDirs.end());
  files.insert(files.end(), linkedDirs.begin(), linkedDirs.end());
  for (const auto& n : files) {
    const std::string rel = relDir.empty() ? n : relDir + "/" + n;
    if (relDir.empty() && isReserved(rel)) continue;
    if (m.index.count(rel)) continue;
    try {
      checkRelpath(rel);
    } catch (const PathError& e) {
      problems.push_back({"path", rel, e.what()});
      continue;
    }
    struct stat lst {};
    if (lstat((dir + "/" + n).c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
      try {
        Resolver r(root);
        r(rel);
        if (r.escapes(rel)) throw PathError("path " + pyrepr(rel) + " resolves outside the bundle (symlink escape)");
      } catch (const PathError& e) {
        problems.push_back({"path", rel, e.what()});
        continue;
      }
    }
    problems.push_back({"extra", rel, "not listed in the manifest"});
  }
  std::sort(subdirs.begin(), subdirs.end());
  for (const auto& s : subdirs) scanExtra(root, relDir.empty() ? s : relDir + "/" + s, m, problems, depth + 1);
}

}  // namespace

IntegrityReport checkTree(const std::string& root, const Manifest& m, const std::vector<std::string>* files,
                          unsigned workers, VerificationCache* cache, const std::string& manifestDigest) {
  IntegrityReport report;
  std::vector<const FileEntry*> wanted;
  if (!files) {
    for (const auto& f : m.files) wanted.push_back(&f);
    scanExtra(root, "", m, report.problems, 0);
  } else {
    for (const auto& f : *files) {
      auto it = m.index.find(f);
      if (it != m.index.end()) wanted.push_back(&m.files[it->second]);
      else report.problems.push_back({"extra", f, "not listed in the manifest"});
    }
  }
  Resolver resolve(root);
  std::vector<ToHash> toHash;
  for (const FileEntry* e : wanted) {
    ToHash t;
    if (!precheck(resolve, *e, report.problems, t)) continue;
    if (cache && cache->isVerified(manifestDigest, e->path, e->digest, t.path, t.st)) {
      ++report.cached;
      continue;
    }
    toHash.push_back(std::move(t));
  }
  // largest first, so one big file does not start last
  std::vector<std::size_t> order(toHash.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return toHash[a].entry->size > toHash[b].entry->size; });
  std::vector<std::string> digests(toHash.size()), errors(toHash.size());
  std::atomic<std::size_t> next{0};
  auto work = [&]() {
    for (std::size_t k; (k = next.fetch_add(1)) < order.size();) {
      const std::size_t i = order[k];
      try {
        digests[i] = hashFile(toHash[i].path, m.algorithm);
      } catch (const std::system_error& e) {
        errors[i] = std::string("unreadable: ") + std::strerror(e.code().value());
      }
    }
  };
  const unsigned n = std::min<std::size_t>(workers ? workers : defaultWorkers(), toHash.size());
  if (n <= 1) {
    work();
  } else {
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < n; ++t) pool.emplace_back(work);
    for (auto& t : pool) t.join();
  }
  std::vector<VerificationCache::Item> good;
  for (std::size_t i = 0; i < toHash.size(); ++i) {
    const FileEntry& e = *toHash[i].entry;
    report.bytes += e.size;
    if (!errors[i].empty()) report.problems.push_back({"missing", e.path, errors[i]});
    else if (digests[i] != e.digest) report.problems.push_back({"modified", e.path, std::string(algorithmName(m.algorithm)) + " differs"});
    else good.push_back({e.path, e.digest, toHash[i].path, toHash[i].st});
  }
  if (cache) cache->record(manifestDigest, good);
  report.checked = wanted.size();
  std::stable_sort(report.problems.begin(), report.problems.end(), [](const Problem& a, const Problem& b) {
    return std::tie(a.kind, a.path) < std::tie(b.kind, b.path);
  });
  return report;
}

}  // namespace detail
}  // namespace hepbundle
