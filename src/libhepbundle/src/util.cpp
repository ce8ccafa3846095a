// Small text and file helpers that reproduce the Python behaviour the messages depend on
// (repr, fnmatch, difflib, SemVer order, pathlib's absolute()).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>

#include "internal.hpp"

namespace hepbundle::detail {

std::string pyrepr(const std::string& s) {
  const bool hasSingle = s.find('\'') != std::string::npos;
  const bool hasDouble = s.find('"') != std::string::npos;
  const char q = (hasSingle && !hasDouble) ? '"' : '\'';
  std::string out(1, q);
  for (unsigned char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == static_cast<unsigned char>(q)) {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += q;
  return out;
}

namespace {

// length of the UTF-8 sequence starting at s[i] (1 for invalid bytes)
std::size_t u8len(const std::string& s, std::size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
  return std::min(n, s.size() - i);
}

// match one [...] class at pattern[p] (p at '['); returns the index after ']' or npos when the
// bracket is unterminated (then '[' is literal, as in fnmatch.translate)
std::size_t matchClass(const std::string& pat, std::size_t p, const std::string& name,
                       std::size_t n, bool& matched) {
  std::size_t j = p + 1;
  bool negate = false;
  if (j < pat.size() && pat[j] == '!') {
    negate = true;
    ++j;
  }
  std::size_t start = j;
  if (j < pat.size() && pat[j] == ']') ++j;
  while (j < pat.size() && pat[j] != ']') ++j;
  if (j >= pat.size()) return std::string::npos;
  const std::string c = name.substr(n, u8len(name, n));
  bool in = false;
  for (std::size_t k = start; k < j;) {
    std::string lo = pat.substr(k, u8len(pat, k));
    k += lo.size();
    if (k + 1 < j && pat[k] == '-') {
      std::string hi = pat.substr(k + 1, u8len(pat, k + 1));
      k += 1 + hi.size();
      if (lo <= c && c <= hi) in = true;
    } else if (lo == c) {
      in = true;
    }
  }
  matched = in != negate;
  return j + 1;
}

}  // namespace

bool fnmatchcase(const std::string& name, const std::string& pat) {
  std::size_t n = 0, p = 0;
  std::size_t starP = std::string::npos, starN = 0;
  while (n < name.size()) {
    if (p < pat.size()) {
      const char pc = pat[p];
      if (pc == '*') {
        starP = ++p;
        starN = n;
        continue;
      }
      if (pc == '?') {
        n += u8len(name, n);
        ++p;
        continue;
      }
      if (pc == '[') {
        bool matched = false;
        std::size_t after = matchClass(pat, p, name, n, matched);
        if (after == std::string::npos) {
          if (name[n] == '[') {
            ++n;
            ++p;
            continue;
          }
        } else if (matched) {
          n += u8len(name, n);
          p = after;
          continue;
        }
      } else if (pc == name[n]) {
        ++n;
        ++p;
        continue;
      }
    }
    if (starP == std::string::npos) return false;
    starN += u8len(name, starN);
    n = starN;
    p = starP;
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

namespace {

// difflib.SequenceMatcher(None, a, b) matching characters (no junk: the words are short)
std::size_t matchingChars(const std::string& a, const std::string& b) {
  std::map<char, std::vector<std::size_t>> b2j;
  for (std::size_t j = 0; j < b.size(); ++j) b2j[b[j]].push_back(j);
  std::size_t total = 0;
  std::vector<std::array<std::size_t, 4>> queue{{0, a.size(), 0, b.size()}};
  while (!queue.empty()) {
    auto [alo, ahi, blo, bhi] = queue.back();
    queue.pop_back();
    std::size_t besti = alo, bestj = blo, bestsize = 0;
    std::map<std::size_t, std::size_t> j2len;
    for (std::size_t i = alo; i < ahi; ++i) {
      std::map<std::size_t, std::size_t> newj2len;
      auto it = b2j.find(a[i]);
      if (it != b2j.end()) {
        for (std::size_t j : it->second) {
          if (j < blo) continue;
          if (j >= bhi) break;
          auto prev = j > 0 ? j2len.find(j - 1) : j2len.end();
          std::size_t k = (prev != j2len.end() ? prev->second : 0) + 1;
          newj2len[j] = k;
          if (k > bestsize) {
            besti = i + 1 - k;
            bestj = j + 1 - k;
            bestsize = k;
          }
        }
      }
      j2len.swap(newj2len);
    }
    if (bestsize) {
      total += bestsize;
      if (alo < besti && blo < bestj) queue.push_back({alo, besti, blo, bestj});
      if (besti + bestsize < ahi && bestj + bestsize < bhi)
        queue.push_back({besti + bestsize, ahi, bestj + bestsize, bhi});
    }
  }
  return total;
}

}  // namespace

std::vector<std::string> closeMatches(const std::string& word,
                                      const std::vector<std::string>& possibilities, std::size_t n,
                                      double cutoff) {
  std::vector<std::pair<double, std::string>> scored;
  for (const auto& x : possibilities) {
    const std::size_t len = x.size() + word.size();
    if (len == 0) continue;
    const double r = 2.0 * static_cast<double>(matchingChars(x, word)) / static_cast<double>(len);
    if (r >= cutoff) scored.emplace_back(r, x);
  }
  std::sort(scored.begin(), scored.end(), [](const auto& l, const auto& r) { return l > r; });
  std::vector<std::string> out;
  for (std::size_t i = 0; i < scored.size() && i < n; ++i) out.push_back(scored[i].second);
  return out;
}

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

bool startsWith(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

namespace {

bool nameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

bool nameSegment(const std::string& s, std::size_t maxLen) {
  if (s.empty() || s.size() > maxLen) return false;
  if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9'))) return false;
  return std::all_of(s.begin(), s.end(), nameChar);
}

bool isDigits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool numericId(const std::string& s) { return isDigits(s) && (s == "0" || s[0] != '0'); }

bool identChars(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
  });
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    std::size_t pos = s.find(sep, start);
    out.push_back(s.substr(start, pos - start));
    if (pos == std::string::npos) break;
    start = pos + 1;
  }
  return out;
}

struct SemverParts {
  std::vector<std::string> core;
  std::optional<std::string> pre;
};

std::optional<SemverParts> parseSemver(const std::string& v) {
  std::string rest = v;
  const auto plus = rest.find('+');
  if (plus != std::string::npos) {
    const std::string build = rest.substr(plus + 1);
    for (const auto& id : split(build, '.'))
      if (!identChars(id)) return std::nullopt;
    rest = rest.substr(0, plus);
  }
  SemverParts out;
  const auto dash = rest.find('-');
  if (dash != std::string::npos) {
    const std::string pre = rest.substr(dash + 1);
    for (const auto& id : split(pre, '.')) {
      if (!identChars(id)) return std::nullopt;
      if (isDigits(id) && !numericId(id)) return std::nullopt;
    }
    out.pre = pre;
    rest = rest.substr(0, dash);
  }
  out.core = split(rest, '.');
  if (out.core.size() != 3) return std::nullopt;
  for (const auto& c : out.core)
    if (!numericId(c)) return std::nullopt;
  return out;
}

std::string zfill(const std::string& s, std::size_t w) {
  return s.size() >= w ? s : std::string(w - s.size(), '0') + s;
}

}  // namespace

bool isNameValid(const std::string& name) {
  const auto slash = name.find('/');
  if (slash == std::string::npos) return false;
  return nameSegment(name.substr(0, slash), 64) && nameSegment(name.substr(slash + 1), 128);
}

bool isSemver(const std::string& v) { return parseSemver(v).has_value(); }

bool isPrerelease(const std::string& v) {
  auto p = parseSemver(v);
  return p && p->pre.has_value();
}

bool isAlias(const std::string& a) {
  if (a.empty() || a.size() > 64 || !(a[0] >= 'a' && a[0] <= 'z')) return false;
  return std::all_of(a.begin(), a.end(), nameChar);
}

std::string versionKey(const std::string& v) {
  auto p = parseSemver(v);
  if (!p) throw NotFoundError(pyrepr(v) + " is not a SemVer version (e.g. 1.2.0)");
  std::string core = zfill(p->core[0], 20) + "." + zfill(p->core[1], 20) + "." + zfill(p->core[2], 20);
  if (!p->pre) return core + "~";
  std::vector<std::string> parts;
  for (const auto& id : split(*p->pre, '.')) parts.push_back(isDigits(id) ? "0" + zfill(id, 20) : "1" + id);
  return core + "-" + join(parts, std::string(1, '\x01'));
}

std::string hexOf(const unsigned char* data, std::size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = digits[data[i] >> 4];
    out[2 * i + 1] = digits[data[i] & 15];
  }
  return out;
}

bool isLowerHex(const std::string& s, std::size_t n) {
  return s.size() == n &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::optional<std::int64_t> parseUtc(const std::string& s) {
  if (s.size() != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
      s[19] != 'Z')
    return std::nullopt;
  for (std::size_t i : {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18})
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
  std::tm tm{};
  tm.tm_year = std::stoi(s.substr(0, 4)) - 1900;
  tm.tm_mon = std::stoi(s.substr(5, 2)) - 1;
  tm.tm_mday = std::stoi(s.substr(8, 2));
  tm.tm_hour = std::stoi(s.substr(11, 2));
  tm.tm_min = std::stoi(s.substr(14, 2));
  tm.tm_sec = std::stoi(s.substr(17, 2));
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 59)
    return std::nullopt;
  return static_cast<std::int64_t>(timegm(&tm));
}

std::string formatUtc(std::int64_t t, const char* fmt) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, fmt, &tm);
  return buf;
}

std::string absolutePath(const std::string& p) {
  std::string full = p;
  if (p.empty() || p[0] != '/') {
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) throw HepbundleError("cannot read the working directory");
    full = std::string(cwd) + "/" + p;
  }
  std::vector<std::string> keep;
  for (const auto& seg : split(full, '/'))
    if (!seg.empty() && seg != ".") keep.push_back(seg);
  return "/" + join(keep, "/");
}

// str(PurePosixPath(name))
std::string posixPath(const std::string& name) {
  if (name.empty()) return ".";
  std::vector<std::string> keep;
  std::size_t start = 0;
  while (true) {
    auto pos = name.find('/', start);
    std::string seg = name.substr(start, pos - start);
    if (!seg.empty() && seg != ".") keep.push_back(seg);
    if (pos == std::string::npos) break;
    start = pos + 1;
  }
  std::string lead = name[0] == '/' ? (startsWith(name, "//") && !startsWith(name, "///") ? "//" : "/") : "";
  std::string out = lead + join(keep, "/");
  return out.empty() ? "." : out;
}

std::string dirName(const std::string& p) {
  const auto pos = p.rfind('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return p.substr(0, pos);
}

std::string baseName(const std::string& p) {
  const auto pos = p.rfind('/');
  return pos == std::string::npos ? p : p.substr(pos + 1);
}

std::string envOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

namespace {
thread_local ReadRecorder* activeRecorder = nullptr;
}

FileId FileId::of(const struct stat& st) {
  const auto ns = [](const timespec& t) { return static_cast<std::int64_t>(t.tv_sec) * 1000000000LL + t.tv_nsec; };
  return FileId{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino), static_cast<std::int64_t>(st.st_size),
                ns(st.st_mtim), ns(st.st_ctim)};
}

std::optional<FileId> FileId::now(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return of(st);
}

ReadRecorder::ReadRecorder() : outer_(activeRecorder) { activeRecorder = this; }
ReadRecorder::~ReadRecorder() { activeRecorder = outer_; }
void ReadRecorder::note(const std::string& path, const struct stat& st) {
  if (activeRecorder) activeRecorder->files.emplace_back(path, FileId::of(st));
}
bool recentlyChanged(const std::vector<std::pair<std::string, FileId>>& files, int seconds) {
  timespec now {};
  clock_gettime(CLOCK_REALTIME, &now);
  const std::int64_t limit = (static_cast<std::int64_t>(now.tv_sec) - seconds) * 1000000000LL + now.tv_nsec;
  for (const auto& kv : files)
    if (kv.second.mtimeNs > limit || kv.second.ctimeNs > limit) return true;
  return false;
}

bool unchanged(const std::vector<std::pair<std::string, FileId>>& files) {
  for (const auto& [path, id] : files)
    if (FileId::now(path) != id) return false;
  return true;
}

std::string readSmallFile(const std::string& path, std::size_t max) {
  if (path.find('\0') != std::string::npos) throw ReadError{EINVAL};
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is then refused as not regular
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw ReadError{errno};
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    throw ReadError{e};
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw ReadError{0, false, true, 0, st.st_mode};
  }
  if (static_cast<std::uint64_t>(st.st_size) > max) {
    ::close(fd);
    throw ReadError{0, true, false, static_cast<std::uint64_t>(st.st_size)};
  }
  ReadRecorder::note(path, st);  // the identity before the bytes: a later change shows
  std::string out;
  out.resize(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (true) {
    if (got == out.size()) {
      if (out.size() >= max + 1) break;
      out.resize(std::min(max + 1, out.size() + 65536));
    }
    const ssize_t n = ::read(fd, &out[got], out.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      throw ReadError{e};
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  ::close(fd);
  out.resize(got);
  if (got > max) throw ReadError{0, true, false, got};
  return out;
}

const char* utf8Error(const std::string& s, std::size_t& start) {
  // CPython's UTF-8 decoder: the reason of its UnicodeDecodeError, at the sequence's first byte
  const auto* b = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  for (std::size_t i = 0; i < n;) {
    const unsigned c = b[i];
    std::size_t len = 0;
    unsigned lo = 0x80, hi = 0xBF;  // the valid range of the second byte
    if (c < 0x80) len = 1;
    else if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else {
      start = i;
      return "invalid start byte";
    }
    for (std::size_t k = 1; k < len; ++k) {
      if (i + k >= n) {
        start = i;
        return "unexpected end of data";
      }
      const unsigned d = b[i + k];
      if (k == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF)) {
        start = i;
        return "invalid continuation byte";
      }
    }
    i += len;
  }
  return nullptr;
}

std::string thousands(std::uint64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<std::size_t>(i), ",");
  return s;
}

namespace {
struct TooDeep {};
}  // namespace

void tooBig(const std::string& source, std::uint64_t size, std::uint64_t limit) {
  throw FormatError(source + ": " + thousands(size) + " bytes, over the limit of " + thousands(limit),
                    "see docs/reference/errors.md § Limits");
}

namespace {
// nlohmann's DOM builder behind a depth check on every container opened: Python's MAX_JSON_DEPTH
// (containers nested deeper than kMaxJsonDepth levels are refused, however the rest parses).
// Not json::parse's callback form: its builder scans the parent container at every object's end,
// quadratic in an array of objects (a 100,000-entry manifest took seconds, minutes under ASan).
template <class J>
struct DepthLimited {
  nlohmann::detail::json_sax_dom_parser<J> dom;
  int depth = 0;
  explicit DepthLimited(J& result) : dom(result, true) {}
  bool null() { return dom.null(); }
  bool boolean(bool v) { return dom.boolean(v); }
  bool number_integer(typename J::number_integer_t v) { return dom.number_integer(v); }
  bool number_unsigned(typename J::number_unsigned_t v) { return dom.number_unsigned(v); }
  bool number_float(typename J::number_float_t v, const typename J::string_t& s) { return dom.number_float(v, s); }
  bool string(typename J::string_t& v) { return dom.string(v); }
  bool binary(typename J::binary_t& v) { return dom.binary(v); }
  bool key(typename J::string_t& v) { return dom.key(v); }
  bool start_object(std::size_t n) { return enter() && dom.start_object(n); }
  bool start_array(std::size_t n) { return enter() && dom.start_array(n); }
  bool end_object() { --depth; return dom.end_object(); }
  bool end_array() { --depth; return dom.end_array(); }
  template <class Exception>
  bool parse_error(std::size_t pos, const std::string& token, const Exception& ex) { return dom.parse_error(pos, token, ex); }
  bool enter() {
    if (++depth > kMaxJsonDepth) throw TooDeep{};
    return true;
  }
};

template <class J>
J parseLimited(const std::string& text, const std::string& source) {
  if (text.size() > kMaxJsonBytes) tooBig(source, text.size(), kMaxJsonBytes);
  J out;
  try {
    DepthLimited<J> sax(out);
    J::sax_parse(text, &sax);
  } catch (const TooDeep&) {
    throw FormatError(source + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  } catch (const nlohmann::json::exception& e) {
    std::string what = e.what();
    const auto close = what.find("] ");
    if (startsWith(what, "[json.exception") && close != std::string::npos) what = what.substr(close + 2);
    throw FormatError(source + ": not valid JSON: " + what);
  }
  return out;
}
}  // namespace

json parseJson(const std::string& text, const std::string& source) { return parseLimited<json>(text, source); }
nlohmann::ordered_json parseOrderedJson(const std::string& text, const std::string& source) {
  return parseLimited<nlohmann::ordered_json>(text, source);
}

std::string describeMode(mode_t m) {
  if (S_ISFIFO(m)) return "a FIFO (named pipe)";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISLNK(m)) return "a symbolic link";
  return "a special file";
}

void log(const Options& o, LogLevel level, const std::string& msg) {
  if (o.log) {
    o.log(level, msg);
  } else if (level == LogLevel::Warning) {
    std::cerr << "hepbundle: " << msg << "\n";
  }
}

std::string pyStr(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "True" : "False";
  if (v.is_null()) return "None";
  return v.dump();
}

bool writeFileAtomic(const std::string& target, const std::string& text) {
  std::string tmpl = dirName(target) + "/.tmp-XXXXXX";
  const int fd = mkstemp(&tmpl[0]);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = (::close(fd) == 0) && ok;
  if (!ok || std::rename(tmpl.c_str(), target.c_str()) != 0) {
    ::unlink(tmpl.c_str());
    return false;
  }
  return true;
}

}  // namespace hepbundle::detail
