// Validity scopes and the job's context (bundle-spec/validity.md; src/hepbundle/validity.py):
// a context of key=value pairs, a scope parsed from a manifest's or a catalogue record's
// `validity` member, and the two rules — a scope *excludes* a context when a key it restricts
// matches none of its entries, and *covers* it when not excluded and at least one key matched.
// Messages as Python's, which the conformance test compares.
#include <algorithm>
#include <regex>
#include <cstring>

#include "internal.hpp"

namespace hepbundle::detail {

namespace {

// CONTEXT_KEYS and the tag-like sections (section → context key), in Python's order
const char* const kContextKeys[] = {"run", "time", "period", "geometry", "conditions", "release"};
const std::pair<const char*, const char*> kGlobs[] = {
    {"periods", "period"}, {"geometry", "geometry"}, {"conditions", "conditions"}, {"releases", "release"}};

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool allDigits(const std::string& s) { return !s.empty() && std::all_of(s.begin(), s.end(), isDigit); }

std::string strip(const std::string& s) {
  std::size_t a = 0, b = s.size();
  while (a < b && isSpace(s[a])) ++a;
  while (b > a && isSpace(s[b - 1])) --b;
  return s.substr(a, b - a);
}

bool isContextKey(const std::string& k) {
  return std::any_of(std::begin(kContextKeys), std::end(kContextKeys), [&](const char* c) { return k == c; });
}

// ^[a-z][a-z0-9_.-]{0,63}$
bool isKey(const std::string& k) {
  if (k.empty() || k.size() > 64 || !(k[0] >= 'a' && k[0] <= 'z')) return false;
  return std::all_of(k.begin(), k.end(), [](char c) { return (c >= 'a' && c <= 'z') || isDigit(c) || c == '_' || c == '.' || c == '-'; });
}

// two non-negative decimal numbers of any length, compared by value
int compareNumbers(const std::string& a, const std::string& b) {
  const auto trim = [](const std::string& s) {
    const auto i = s.find_first_not_of('0');
    return i == std::string::npos ? std::string() : s.substr(i);
  };
  const std::string x = trim(a), y = trim(b);
  if (x.size() != y.size()) return x.size() < y.size() ? -1 : 1;
  return x.compare(y) < 0 ? -1 : x.compare(y) > 0 ? 1 : 0;
}

[[noreturn]] void bad(const std::string& where, const std::string& message) { throw FormatError(where + ": " + message); }

// Python's repr() of a JSON value, as the messages quote it
template <class J>
std::string reprOf(const J& v) {
  switch (v.type()) {
    case J::value_t::null: return "None";
    case J::value_t::boolean: return v.template get<bool>() ? "True" : "False";
    case J::value_t::string: return pyrepr(v.template get<std::string>());
    case J::value_t::array: {
      std::vector<std::string> parts;
      for (const auto& x : v) parts.push_back(reprOf(x));
      return "[" + join(parts, ", ") + "]";
    }
    case J::value_t::object: {
      std::vector<std::string> parts;
      for (auto it = v.begin(); it != v.end(); ++it) parts.push_back(pyrepr(it.key()) + ": " + reprOf(it.value()));
      return "{" + join(parts, ", ") + "}";
    }
    default: return v.dump();
  }
}

// Python's str() of a JSON value (f-string interpolation)
template <class J>
std::string strOf(const J& v) {
  return v.is_string() ? v.template get<std::string>() : reprOf(v);
}

// calendar.timegm of a proleptic Gregorian date and time (no range checks)
std::int64_t timegm(int y, int mo, int d, int h, int mi, int s) {
  y -= mo <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const std::int64_t yoe = y - era * 400;
  const std::int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return (era * 146097 + doe - 719468) * 86400 + h * 3600 + mi * 60 + s;
}

}  // namespace

std::int64_t parseValidityTime(const std::string* text, const std::string& shown, const std::string& where) {
  // _TIME_RE ^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2})Z)?$ ('$' also before a final \n)
  const auto fail = [&] { bad(where, shown + " is not a UTC time like 2024-04-01 or 2024-04-01T00:00:00Z"); };
  if (!text) fail();
  std::string t = *text;
  if (!t.empty() && t.back() == '\n') t.pop_back();
  const auto digitsAt = [&](std::size_t pos, std::size_t n) {
    for (std::size_t i = pos; i < pos + n; ++i)
      if (i >= t.size() || !isDigit(t[i])) return false;
    return true;
  };
  const bool date = t.size() >= 10 && digitsAt(0, 4) && t[4] == '-' && digitsAt(5, 2) && t[7] == '-' && digitsAt(8, 2);
  const bool full = t.size() == 20 && t[10] == 'T' && digitsAt(11, 2) && t[13] == ':' && digitsAt(14, 2) && t[16] == ':' &&
                    digitsAt(17, 2) && t[19] == 'Z';
  if (!date || !(t.size() == 10 || full)) fail();
  const auto num = [&](std::size_t pos, std::size_t n) { return std::stoi(t.substr(pos, n)); };
  const int y = num(0, 4), mo = num(5, 2), d = num(8, 2);
  const int h = full ? num(11, 2) : 0, mi = full ? num(14, 2) : 0, s = full ? num(17, 2) : 0;
  // datetime's checks, in its order and words
  std::string why;
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (y < 1) why = "year " + std::to_string(y) + " is out of range";
  else if (mo < 1 || mo > 12) why = "month must be in 1..12";
  else if (d < 1 || d > kDays[mo - 1] + (mo == 2 && leap)) why = "day is out of range for month";
  else if (h > 23) why = "hour must be in 0..23";
  else if (mi > 59) why = "minute must be in 0..59";
  else if (s > 59) why = "second must be in 0..59";
  if (!why.empty()) bad(where, pyrepr(*text) + " is not a date: " + why);
  return timegm(y, mo, d, h, mi, s);
}

// ---- the context ------------------------------------------------------------------------------

std::string Context::str() const {
  std::vector<std::string> parts;
  for (const auto& [k, v] : values) parts.push_back(k + "=" + v);
  return join(parts, ",");
}

const std::string* Context::find(const std::string& key) const {
  for (const auto& [k, v] : values)
    if (k == key) return &v;
  return nullptr;
}

Context parseContext(const std::string& text, const std::string& source) {
  std::vector<std::pair<std::string, std::string>> pairs;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = text.find(',', start);
    const std::string item = strip(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    start = comma == std::string::npos ? text.size() + 1 : comma + 1;
    if (item.empty()) continue;
    const auto eq = item.find('=');
    if (eq == std::string::npos && !pairs.empty()) {  // a comma inside a value: release=Athena,25.0.12
      pairs.back().second += "," + item;
      continue;
    }
    if (eq == std::string::npos)
      throw UsageError(source + ": " + pyrepr(item) + " is not key=value", "write e.g. run=456789,release=CMSSW_15_0_3");
    pairs.emplace_back(strip(item.substr(0, eq)), strip(item.substr(eq + 1)));
  }
  Context ctx;
  for (const auto& [key, raw] : pairs) {
    if (!isKey(key)) throw UsageError(source + ": " + pyrepr(key) + " is not a context key (lowercase, e.g. run)");
    if (ctx.find(key)) throw UsageError(source + ": " + key + " is given twice");
    const std::string value = strip(raw);
    if (value.empty()) throw UsageError(source + ": " + key + "=" + pyrepr(raw) + " has no usable value");
    if (key == "run") {
      if (!allDigits(value)) throw UsageError(source + ": run=" + pyrepr(value) + " is not a run number");
      ctx.run = value;
    } else if (key == "time") {
      try {
        ctx.time = parseValidityTime(&value, pyrepr(value), source + ": time");
      } catch (const FormatError& e) {
        throw UsageError(e.message());
      }
    }
    ctx.values.emplace_back(key, value);
  }
  return ctx;
}

Context jobContext(const Options& options) {
  if (options.context) return parseContext(*options.context, "context");
  return parseContext(envOr("HEPBUNDLE_CONTEXT"), "HEPBUNDLE_CONTEXT");
}

// ---- runtime requirements -------------------------------------------------------------------

namespace {

// _version_tuple: parts split at . + -, numbers compare as numbers before words, trailing zeros dropped
std::vector<std::pair<int, std::string>> versionTuple(const std::string& text) {
  std::vector<std::pair<int, std::string>> out;
  std::size_t start = 0;
  while (true) {
    const auto pos = text.find_first_of(".+-", start);
    const std::string part = text.substr(start, pos == std::string::npos ? std::string::npos : pos - start);
    out.emplace_back(allDigits(part) ? 0 : 1, part);
    if (pos == std::string::npos) break;
    start = pos + 1;
  }
  while (!out.empty() && out.back().first == 0 && compareNumbers(out.back().second, "0") == 0) out.pop_back();
  return out;
}

int compareVersions(const std::string& a, const std::string& b) {
  const auto x = versionTuple(a), y = versionTuple(b);
  for (std::size_t i = 0; i < x.size() && i < y.size(); ++i) {
    if (x[i].first != y[i].first) return x[i].first < y[i].first ? -1 : 1;
    const int c = x[i].first == 0 ? compareNumbers(x[i].second, y[i].second) : x[i].second.compare(y[i].second);
    if (c != 0) return c < 0 ? -1 : 1;
  }
  return x.size() == y.size() ? 0 : x.size() < y.size() ? -1 : 1;
}

const char* const kOps[] = {"==", "!=", ">=", "<=", ">", "<"};

// ^\s*(==|!=|>=|<=|>|<)\s*([0-9][0-9A-Za-z.+-]*)\s*$
bool parseClause(const std::string& c, std::string& op, std::string& version) {
  const std::string s = strip(c);
  for (const char* o : kOps) {
    if (s.compare(0, std::strlen(o), o) != 0) continue;
    const std::string v = strip(s.substr(std::strlen(o)));
    const bool ok = !v.empty() && isDigit(v[0]) && std::all_of(v.begin(), v.end(), [](char ch) {
      return isDigit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '.' || ch == '+' || ch == '-';
    });
    if (!ok) return false;
    op = o;
    version = v;
    return true;
  }
  return false;
}

Requirement parseRequirement(const std::string& text, const std::string& where) {
  // ^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.+?)\s*$ then each comma-separated clause
  const auto fail = [&] { bad(where, pyrepr(text) + " is not a requirement like 'onnxruntime >= 1.18'"); };
  const std::string s = strip(text);
  const auto nameChar = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || isDigit(c) || c == '.' || c == '_' || c == '-'; };
  std::size_t i = 0;
  while (i < s.size() && nameChar(s[i])) ++i;
  if (i == 0 || s[0] == '.' || s[0] == '_' || s[0] == '-') fail();
  const std::string rest = strip(s.substr(i));
  if (rest.empty() || rest.find('\n') != std::string::npos) fail();
  Requirement r;
  r.text = text;
  for (char c : s.substr(0, i)) r.name += c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::size_t start = 0;
  while (true) {
    const auto comma = rest.find(',', start);
    std::string op, version;
    if (!parseClause(rest.substr(start, comma == std::string::npos ? std::string::npos : comma - start), op, version)) fail();
    r.clauses.emplace_back(op, version);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return r;
}

}  // namespace

bool Requirement::admits(const std::string& version) const {
  for (const auto& [op, v] : clauses) {
    const int c = compareVersions(version, v);
    const bool ok = op == "==" ? c == 0 : op == "!=" ? c != 0 : op == ">=" ? c >= 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c < 0;
    if (!ok) return false;
  }
  return true;
}

// ---- the scope --------------------------------------------------------------------------------

namespace {

template <class J>
std::vector<std::string> strings(const J& value, const std::string& where) {
  std::vector<std::string> out;
  bool ok = value.is_string() || (value.is_array() && !value.empty());
  if (value.is_string()) out.push_back(value.template get<std::string>());
  if (value.is_array())
    for (const auto& s : value) {
      if (!s.is_string()) ok = false;
      else out.push_back(s.template get<std::string>());
    }
  for (const auto& s : out) ok = ok && !strip(s).empty();
  if (!ok) bad(where, "must be a non-empty string or list of non-empty strings");
  return out;
}

template <class J>
std::string runNumber(const J& v, const std::string& where) {
  if (v.is_number_unsigned() || (v.is_number_integer() && v.template get<std::int64_t>() >= 0)) return v.dump();
  bad(where, reprOf(v) + " is not a run number (an integer ≥ 0)");
}

template <class J>
std::int64_t timeOf(const J& v, const std::string& where) {
  const std::string text = v.is_string() ? v.template get<std::string>() : std::string();
  return parseValidityTime(v.is_string() ? &text : nullptr, reprOf(v), where);
}

template <class J>
const J* member(const J& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

// {low} or {low, high}: an object with the first key and no key but the two
template <class J>
bool isRange(const J& v, const char* low, const char* high) {
  if (!v.is_object() || !v.contains(low)) return false;
  for (auto it = v.begin(); it != v.end(); ++it)
    if (it.key() != low && it.key() != high) return false;
  return true;
}

// _list: absent → empty; present → a non-empty list
template <class J>
std::vector<const J*> listOf(const J& obj, const char* key, const std::string& where) {
  std::vector<const J*> out;
  const J* v = member(obj, key);
  if (!v) return out;
  if (!v->is_array() || v->empty()) bad(where + "." + key, "must be a non-empty list");
  for (const auto& x : *v) out.push_back(&x);
  return out;
}

template <class J>
Scope parseScopeOf(const J& obj, const std::string& where) {
  Scope scope;
  if (obj.is_null()) return scope;
  if (!obj.is_object() || obj.empty()) bad(where, "must be a mapping with at least one of runs, times, periods, …");
  static const std::vector<std::string> known = {"conditions", "geometry", "periods", "releases", "runs", "runtimes", "scope", "times"};
  std::vector<std::string> unknown;
  for (auto it = obj.begin(); it != obj.end(); ++it)
    if (std::find(known.begin(), known.end(), it.key()) == known.end()) unknown.push_back(it.key());
  if (!unknown.empty()) {
    std::sort(unknown.begin(), unknown.end());
    bad(where + "." + unknown[0], "unknown key (known: " + join(known, ", ") + ")");
  }
  std::size_t i = 0;
  for (const J* r : listOf(obj, "runs", where)) {
    const std::string at = where + ".runs[" + std::to_string(i++) + "]";
    if (!isRange(*r, "first", "last")) bad(at, "a run range is {first: N} or {first: N, last: M}");
    RunRange range;
    range.first = runNumber((*r)["first"], at + ".first");
    if (const J* last = member(*r, "last"); last && !last->is_null()) range.last = runNumber(*last, at + ".last");
    if (range.last && compareNumbers(*range.last, range.first) < 0) bad(at, "last " + *range.last + " is before first " + range.first);
    scope.runs.push_back(range);
  }
  i = 0;
  for (const J* t : listOf(obj, "times", where)) {
    const std::string at = where + ".times[" + std::to_string(i++) + "]";
    if (!isRange(*t, "since", "until")) bad(at, "a time range is {since: T} or {since: T, until: T}");
    TimeRange range;
    const J& since = (*t)["since"];
    range.start = timeOf(since, at + ".since");
    range.since = since.template get<std::string>();
    if (const J* until = member(*t, "until"); until && !until->is_null()) {
      range.end = timeOf(*until, at + ".until");
      range.until = until->template get<std::string>();
      if (*range.end <= range.start) bad(at, "until " + *range.until + " is not after since " + range.since);
    }
    scope.times.push_back(range);
  }
  for (const auto& [section, key] : kGlobs) {
    (void)key;
    if (const J* v = member(obj, section)) scope.globs.emplace_back(section, strings(*v, where + "." + section));
  }
  if (const J* v = member(obj, "runtimes")) {
    i = 0;
    for (const auto& r : strings(*v, where + ".runtimes"))
      scope.runtimes.push_back(parseRequirement(r, where + ".runtimes[" + std::to_string(i++) + "]"));
  }
  if (const J* free = member(obj, "scope")) {
    if (!free->is_object()) bad(where + ".scope", "must be a mapping of key → value or list of values");
    for (auto it = free->begin(); it != free->end(); ++it) {
      if (!isKey(it.key()) || isContextKey(it.key()))
        bad(where + ".scope", pyrepr(it.key()) + " is not a free-form key (lowercase, not one of run, time, period, geometry, conditions, release)");
      scope.keys.emplace_back(it.key(), strings(it.value(), where + ".scope." + it.key()));
    }
  }
  return scope;
}

// _normal: runs of spaces, ',' and '/' are one space (asetup writes Athena,25.0.12)
std::string normal(const std::string& text) {
  const std::string s = strip(text);
  std::string out;
  bool sep = false;
  for (char c : s) {
    if (isSpace(c) || c == ',' || c == '/') {
      sep = true;
      continue;
    }
    if (sep) out += ' ';
    sep = false;
    out += c;
  }
  if (sep) out += ' ';
  return out;
}

const std::vector<std::string>* globsOf(const Scope& s, const std::string& section) {
  for (const auto& [k, v] : s.globs)
    if (k == section) return &v;
  return nullptr;
}

}  // namespace

Scope parseScope(const json& obj, const std::string& where) { return parseScopeOf(obj, where); }
Scope parseScope(const nlohmann::ordered_json& obj, const std::string& where) { return parseScopeOf(obj, where); }

// validity.schema.json, what a manifest's schema check at open refuses (Python: manifest.py's
// validate); the scope's own rules (a run range's last before its first, a date that is not one)
// are judged by parseScope when a context asks
namespace {
[[noreturn]] void schemaBad(const std::string& where, const json& v, const std::string& what) {
  bad(where, reprOf(v) + " " + what);
}

void schemaObject(const json& v, const std::string& where, const std::vector<std::string>& known, const char* required) {
  if (!v.is_object()) schemaBad(where, v, "is not of type 'object'");
  for (auto it = v.begin(); it != v.end(); ++it)
    if (std::find(known.begin(), known.end(), it.key()) == known.end()) bad(where + "." + it.key(), "unknown key");
  if (required && !v.contains(required)) bad(where + "." + required, "required field is missing");
}

const json& schemaList(const json& v, const std::string& where) {
  if (!v.is_array()) schemaBad(where, v, "is not of type 'array'");
  if (v.empty()) schemaBad(where, v, "should be non-empty");
  return v;
}

// a string, or a non-empty list of strings, each passing ok
template <class Ok>
void schemaStrings(const json& v, const std::string& where, Ok ok, const std::string& what) {
  if (v.is_string()) {
    if (!ok(v.get<std::string>())) schemaBad(where, v, what);
    return;
  }
  if (!v.is_array() || v.empty()) schemaBad(where, v, "is not valid under any of the given schemas");
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::string at = where + "[" + std::to_string(i) + "]";
    if (!v[i].is_string()) schemaBad(at, v[i], "is not of type 'string'");
    if (!ok(v[i].get<std::string>())) schemaBad(at, v[i], what);
  }
}

bool schemaTime(const std::string& t) {
  static const std::regex re(R"(^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}Z)?$)");
  return std::regex_search(t, re);
}
}  // namespace

void checkValiditySchema(const json& v, const std::string& where) {
  static const std::vector<std::string> known = {"conditions", "geometry", "periods", "releases", "runs", "runtimes", "scope", "times"};
  schemaObject(v, where, known, nullptr);
  if (v.empty()) schemaBad(where, v, "should be non-empty");
  const auto pattern = [](const std::string& s) { return !s.empty() && s.size() <= 256; };
  for (const char* kind : {"runs", "times"}) {
    if (!v.contains(kind)) continue;
    const bool runs = kind == std::string("runs");
    const json& list = schemaList(v[kind], where + "." + kind);
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::string at = where + "." + kind + "[" + std::to_string(i) + "]";
      schemaObject(list[i], at, runs ? std::vector<std::string>{"first", "last"} : std::vector<std::string>{"since", "until"},
                   runs ? "first" : "since");
      for (auto it = list[i].begin(); it != list[i].end(); ++it) {
        const json& x = it.value();
        const std::string f = at + "." + it.key();
        if (runs && !(x.is_number_integer() || (x.is_number_float() && x.get<double>() == static_cast<double>(static_cast<std::int64_t>(x.get<double>())))))
          schemaBad(f, x, "is not of type 'integer'");
        if (runs && x.is_number() && x.get<double>() < 0) schemaBad(f, x, "is less than the minimum of 0");
        if (!runs && !x.is_string()) schemaBad(f, x, "is not of type 'string'");
        if (!runs && !schemaTime(x.get<std::string>()))
          schemaBad(f, x, "is invalid: a UTC date (2024-04-01) or time (2024-04-01T00:00:00Z)");
      }
    }
  }
  for (const auto& [section, key] : kGlobs) {
    (void)key;
    if (v.contains(section)) schemaStrings(v[section], where + "." + section, pattern, "should be non-empty");
  }
  if (v.contains("runtimes"))
    schemaStrings(v["runtimes"], where + ".runtimes", [](const std::string& r) {
      try {
        parseRequirement(r, "runtimes");
        return true;
      } catch (const FormatError&) {
        return false;
      }
    }, "is invalid: a requirement like 'onnxruntime >= 1.18'");
  if (v.contains("scope")) {
    const json& free = v["scope"];
    if (!free.is_object()) schemaBad(where + ".scope", free, "is not of type 'object'");
    for (auto it = free.begin(); it != free.end(); ++it) {
      if (!isKey(it.key()) || isContextKey(it.key())) bad(where + ".scope", pyrepr(it.key()) + " is not a free-form key");
      schemaStrings(it.value(), where + ".scope." + it.key(), pattern, "should be non-empty");
    }
  }
}

std::vector<std::pair<std::string, bool>> Scope::checks(const Context& ctx) const {
  std::vector<std::pair<std::string, bool>> out;
  if (ctx.run && !runs.empty())
    out.emplace_back("run", std::any_of(runs.begin(), runs.end(), [&](const RunRange& r) {
                       return compareNumbers(r.first, *ctx.run) <= 0 && (!r.last || compareNumbers(*ctx.run, *r.last) <= 0);
                     }));
  if (ctx.time && !times.empty())
    out.emplace_back("time", std::any_of(times.begin(), times.end(), [&](const TimeRange& t) {
                       return t.start <= *ctx.time && (!t.end || *ctx.time < *t.end);
                     }));
  for (const auto& [section, key] : kGlobs) {
    const std::string* have = ctx.find(key);
    const auto* patterns = globsOf(*this, section);
    if (!have || !patterns) continue;
    const std::string h = normal(*have);
    out.emplace_back(key, std::any_of(patterns->begin(), patterns->end(), [&](const std::string& p) { return fnmatchcase(h, normal(p)); }));
  }
  for (const auto& kv : ctx.values) {
    // named, not structured bindings: C++17 lambdas cannot capture those (clang refuses)
    const std::string& key = kv.first;
    const std::string& value = kv.second;
    if (isContextKey(key)) continue;
    std::string dashed = key;
    std::replace(dashed.begin(), dashed.end(), '_', '-');
    std::vector<const Requirement*> reqs;
    for (const auto& r : runtimes)
      if (r.name == dashed) reqs.push_back(&r);
    if (!reqs.empty()) {
      out.emplace_back(key, std::all_of(reqs.begin(), reqs.end(), [&](const Requirement* r) { return r->admits(value); }));
      continue;
    }
    for (const auto& [k, patterns] : keys)
      if (k == key)
        out.emplace_back(key, std::any_of(patterns.begin(), patterns.end(), [&](const std::string& p) { return fnmatchcase(value, p); }));
  }
  return out;
}

std::vector<std::string> Scope::excludedBy(const Context& ctx) const {
  std::vector<std::string> out;
  for (const auto& [key, ok] : checks(ctx))
    if (!ok) out.push_back(key);
  return out;
}

bool Scope::covers(const Context& ctx) const {
  const auto c = checks(ctx);
  return !c.empty() && std::all_of(c.begin(), c.end(), [](const auto& kv) { return kv.second; });
}

std::string Scope::describe(const std::vector<std::string>* only) const {
  const auto on = [&](const std::string& key) { return !only || std::find(only->begin(), only->end(), key) != only->end(); };
  std::vector<std::string> parts;
  if (!runs.empty() && on("run")) {
    std::vector<std::string> r;
    for (const auto& x : runs) r.push_back(x.first + "\u2013" + (x.last ? *x.last : "\u2026"));
    parts.push_back("runs " + join(r, ", "));
  }
  if (!times.empty() && on("time")) {
    std::vector<std::string> t;
    for (const auto& x : times) t.push_back(x.since + " \u2013 " + (x.until && !x.until->empty() ? *x.until : "\u2026"));
    parts.push_back("times " + join(t, ", "));
  }
  for (const auto& [section, key] : kGlobs)
    if (const auto* p = globsOf(*this, section); p && on(key)) parts.push_back(std::string(section) + " " + join(*p, ", "));
  std::vector<std::string> reqs;
  for (const auto& r : runtimes) {
    std::string underscored = r.name;
    std::replace(underscored.begin(), underscored.end(), '-', '_');
    if (on(r.name) || on(underscored)) reqs.push_back(r.text);
  }
  if (!reqs.empty()) parts.push_back("runtimes " + join(reqs, ", "));
  auto sorted = keys;
  std::sort(sorted.begin(), sorted.end());
  for (const auto& [k, v] : sorted)
    if (on(k)) parts.push_back(k + " " + join(v, ", "));
  return parts.empty() ? "no restriction" : join(parts, "; ");
}

void checkScope(const Bundle& bundle, const Options& options, bool covering) {
  const Context ctx = jobContext(options);
  if (ctx.empty()) return;
  const Manifest& m = BundleAccess::manifest(bundle);
  const Scope scope = parseScope(m.validity, m.ref() + ": validity");
  if (covering && !scope.covers(ctx))
    throw ValidityError(m.ref() + " was chosen as @valid for " + ctx.str() + " by the catalogue, but its signed manifest's validity scope (" +
                            scope.describe() + ") does not cover it",
                        "the catalogue's record of its scope differs from the bundle: do not use it");
  const std::vector<std::string> excluded = scope.excludedBy(ctx);
  if (excluded.empty()) return;
  std::vector<std::string> asked;
  for (const auto& k : excluded) asked.push_back(k + "=" + *ctx.find(k));
  throw ValidityError(m.ref() + " is not valid for " + join(asked, ",") + " (context " + ctx.str() + "): its validity scope is " +
                          scope.describe(&excluded),
                      "pick a version valid for this context (hepbundle versions " + m.name + "), or run with the context the model was made for");
}

}  // namespace hepbundle::detail
