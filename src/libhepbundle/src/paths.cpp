// Bundle path rules (src/hepbundle/paths.py, bundle-spec/README.md § 4): relative, '/'-separated,
// no empty/./.. segment, no control character or backslash, NFC, length limits, no collisions
// after NFC + case folding, and no parent directory that resolves outside the bundle.
#include <limits.h>
#include <stdlib.h>
#include <unicase.h>
#include <unistr.h>
#include <uninorm.h>
#include <unistd.h>

#include <cstdlib>
#include <set>

#include "internal.hpp"

namespace hepbundle::detail {

namespace {

constexpr std::size_t kMaxPathBytes = 4096;
constexpr std::size_t kMaxSegmentBytes = 255;

// Python's relpath.encode("unicode_escape").decode("ascii"): non-ASCII as \xNN/\uNNNN, controls
// escaped. Used only inside messages, so an approximation for astral characters is fine.
std::string unicodeEscape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    char buf[16];
    if (c == '\\') {
      out += "\\\\";
      ++i;
    } else if (c == '\n') {
      out += "\\n", ++i;
    } else if (c == '\t') {
      out += "\\t", ++i;
    } else if (c == '\r') {
      out += "\\r", ++i;
    } else if (c < 0x20 || c == 0x7f) {
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf, ++i;
    } else if (c < 0x80) {
      out += static_cast<char>(c), ++i;
    } else {
      ucs4_t uc = 0;
      int n = u8_mbtouc(&uc, reinterpret_cast<const uint8_t*>(s.data() + i), s.size() - i);
      if (n <= 0) n = 1;
      if (uc < 0x100) std::snprintf(buf, sizeof buf, "\\x%02x", uc);
      else if (uc < 0x10000) std::snprintf(buf, sizeof buf, "\\u%04x", uc);
      else std::snprintf(buf, sizeof buf, "\\U%08x", uc);
      out += buf;
      i += static_cast<std::size_t>(n);
    }
  }
  return out;
}

std::string normalize(const std::string& s, uninorm_t form) {
  std::size_t len = 0;
  uint8_t* r = u8_normalize(form, reinterpret_cast<const uint8_t*>(s.data()), s.size(), nullptr, &len);
  if (!r) return s;
  std::string out(reinterpret_cast<char*>(r), len);
  std::free(r);
  return out;
}

std::string fold(const std::string& s) {
  std::size_t len = 0;
  const std::string nfc = normalize(s, UNINORM_NFC);
  uint8_t* r = u8_casefold(reinterpret_cast<const uint8_t*>(nfc.data()), nfc.size(), nullptr, nullptr,
                           nullptr, &len);
  if (!r) return nfc;
  std::string out(reinterpret_cast<char*>(r), len);
  std::free(r);
  return out;
}

// a prefix of at most n code points (Python's relpath[:n])
std::string prefixChars(const std::string& s, std::size_t n) {
  std::size_t i = 0;
  for (std::size_t k = 0; k < n && i < s.size(); ++k) {
    int len = u8_mblen(reinterpret_cast<const uint8_t*>(s.data() + i), s.size() - i);
    i += len > 0 ? static_cast<std::size_t>(len) : 1;
  }
  return s.substr(0, i);
}

}  // namespace

std::string realpathOf(const std::string& p) {
  // os.path.realpath (non-strict): resolve what exists, keep the rest lexically
  char buf[PATH_MAX];
  if (::realpath(p.c_str(), buf)) return buf;
  const auto pos = p.rfind('/');
  if (pos == std::string::npos || pos == 0) return p;
  return realpathOf(p.substr(0, pos)) + p.substr(pos);
}

bool isReserved(const std::string& relpath) {
  if (relpath == "hepbundle.json" || relpath == "hepbundle.sig" || relpath == ".cvmfscatalog") return true;
  return relpath.find('/') == std::string::npos && startsWith(relpath, "hepbundle.") &&
         endsWith(relpath, ".sig");
}

void checkRelpath(const std::string& relpath) {
  if (relpath.empty()) throw PathError("empty path");
  for (unsigned char c : relpath)
    if (c < 0x20 || c == 0x7f)
      throw PathError("path " + pyrepr(unicodeEscape(relpath)) + " contains a NUL or control character");
  if (u8_check(reinterpret_cast<const uint8_t*>(relpath.data()), relpath.size()) != nullptr)
    throw PathError("path " + pyrepr(unicodeEscape(relpath)) + " is not valid UTF-8");
  if (relpath.find('\\') != std::string::npos)
    throw PathError("path " + pyrepr(relpath) + " contains a backslash; use '/' as separator");
  if (relpath[0] == '/' || (relpath.size() > 1 && relpath[1] == ':'))
    throw PathError("path " + pyrepr(relpath) + " is absolute; bundle paths are relative");
  if (normalize(relpath, UNINORM_NFC) != relpath)
    throw PathError("path " + pyrepr(relpath) + " is not NFC-normalised Unicode");
  if (relpath.size() > kMaxPathBytes)
    throw PathError("path " + pyrepr(prefixChars(relpath, 40)) + "… is longer than " +
                    std::to_string(kMaxPathBytes) + " bytes");
  std::size_t start = 0;
  while (true) {
    const auto pos = relpath.find('/', start);
    const std::string seg = relpath.substr(start, pos - start);
    if (seg.empty() || seg == "." || seg == "..")
      throw PathError("path " + pyrepr(relpath) +
                      " has an empty, '.' or '..' segment; paths must stay inside the bundle");
    if (seg.size() > kMaxSegmentBytes)
      throw PathError("path " + pyrepr(relpath) + " has a segment longer than " +
                      std::to_string(kMaxSegmentBytes) + " bytes");
    if (pos == std::string::npos) break;
    start = pos + 1;
  }
}

void checkCollisions(const std::vector<std::string>& paths) {
  std::map<std::string, std::string> seen;
  for (const auto& p : paths) {
    const std::string key = fold(p);
    auto it = seen.find(key);
    if (it != seen.end() && it->second != p)
      throw PathError("paths " + pyrepr(it->second) + " and " + pyrepr(p) +
                      " collide after Unicode normalisation/case folding");
    if (it != seen.end()) throw PathError("path " + pyrepr(p) + " appears twice");
    seen[key] = p;
  }
}

Resolver::Resolver(std::string root) : root_(std::move(root)), realRoot_(realpathOf(root_)) {
  dirs_[""] = true;
}

bool Resolver::inside(const std::string& real) const {
  return real == realRoot_ || startsWith(real, realRoot_ + "/");
}

std::string Resolver::operator()(const std::string& relpath) {
  checkRelpath(relpath);
  const auto pos = relpath.rfind('/');
  const std::string parent = pos == std::string::npos ? "" : relpath.substr(0, pos);
  auto it = dirs_.find(parent);
  bool ok;
  if (it == dirs_.end()) {
    ok = dirs_[parent] = inside(realpathOf(root_ + "/" + parent));
  } else {
    ok = it->second;
  }
  if (!ok) throw PathError("path " + pyrepr(relpath) + " resolves outside the bundle (symlink escape)");
  return root_ + "/" + relpath;
}

bool Resolver::escapes(const std::string& relpath) const { return !inside(realpathOf(root_ + "/" + relpath)); }

}  // namespace hepbundle::detail
