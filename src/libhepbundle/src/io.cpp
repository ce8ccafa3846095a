// The manifest's "io" member (bundle-spec/io.md, v1/io.schema.json) read into IOSignature, with
// the rules of the schema that a reader needs (types, names, one feature per element of a fixed
// last axis), and the range check and normalisation of Python's hepbundle.iosig.
#include <cmath>
#include <cstdio>
#include <set>

#include "internal.hpp"

namespace hepbundle {

double IONormalisation::apply(double x) const {
  return kind == "offset/scale" ? (x + first) * second : (x - first) / second;
}

namespace {

using detail::json;

[[noreturn]] void bad(const std::string& where, const std::string& what) {
  throw FormatError(where + ": " + what);
}

std::string str(const json& obj, const char* key, const std::string& where, bool required) {
  auto it = obj.find(key);
  if (it == obj.end()) {
    if (required) bad(where, std::string("'") + key + "' is a required property");
    return "";
  }
  if (!it->is_string() || (required && it->get<std::string>().empty()))
    bad(where + "." + key, "must be a non-empty string");
  return it->get<std::string>();
}

std::optional<double> number(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) return std::nullopt;
  if (!it->is_number()) bad(where + "." + key, "must be a number");
  return it->get<double>();
}

std::string fmt(double v) {  // Python's format(v, "g")
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

IOFeature readFeature(const json& f, const std::string& where) {
  if (!f.is_object()) bad(where, "must be an object");
  IOFeature out;
  out.name = str(f, "name", where, true);
  if (f.contains("unit")) out.unit = str(f, "unit", where, false);
  out.description = str(f, "description", where, false);
  if (auto n = f.find("normalisation"); n != f.end()) {
    const std::string w = where + ".normalisation";
    if (!n->is_object()) bad(w, "must be an object");
    IONormalisation norm;
    if (n->contains("offset") && n->contains("scale") && n->size() == 2) {
      norm = {"offset/scale", *number(*n, "offset", w), *number(*n, "scale", w)};
    } else if (n->contains("mean") && n->contains("std") && n->size() == 2) {
      norm = {"mean/std", *number(*n, "mean", w), *number(*n, "std", w)};
      if (!(norm.second > 0)) bad(w + ".std", "must be greater than 0");
    } else {
      bad(w, "must be {offset, scale} or {mean, std}");
    }
    out.normalisation = norm;
  }
  if (auto r = f.find("range"); r != f.end()) {
    if (!r->is_object()) bad(where + ".range", "must be an object");
    out.min = number(*r, "min", where + ".range");
    out.max = number(*r, "max", where + ".range");
  }
  return out;
}

IOTensor readTensor(const json& t, const std::string& where, bool input) {
  static const std::set<std::string> kDtypes = {
      "bool",  "int8",   "int16",   "int32",    "int64",   "uint8",   "uint16",
      "uint32", "uint64", "float16", "bfloat16", "float32", "float64", "string"};
  if (!t.is_object()) bad(where, "must be an object");
  IOTensor out;
  out.name = str(t, "name", where, true);
  out.dtype = str(t, "dtype", where, true);
  if (!kDtypes.count(out.dtype)) bad(where + ".dtype", detail::pyrepr(out.dtype) + " is not a known dtype");
  auto shape = t.find("shape");
  if (shape == t.end() || !shape->is_array()) bad(where + ".shape", "must be a list");
  for (const json& d : *shape) {
    if (d.is_number_unsigned() || (d.is_number_integer() && d.get<std::int64_t>() >= 0))
      out.shape.push_back(std::to_string(d.get<std::uint64_t>()));
    else if (d.is_string() && !d.get<std::string>().empty())
      out.shape.push_back(d.get<std::string>());
    else if (d.is_null())
      out.shape.push_back("?");
    else
      bad(where + ".shape", "a dimension is a size, a symbol or null");
  }
  out.precision = str(t, "precision", where, false);
  std::set<std::string> seen;
  if (auto fs = t.find("features"); fs != t.end()) {
    if (!input) bad(where, "features describe inputs; an output has classes");
    if (!fs->is_array()) bad(where + ".features", "must be a list");
    for (std::size_t i = 0; i < fs->size(); ++i) {
      out.features.push_back(readFeature((*fs)[i], where + ".features[" + std::to_string(i) + "]"));
      if (!seen.insert(out.features.back().name).second)
        bad(where, "feature " + detail::pyrepr(out.features.back().name) + " appears twice");
    }
  }
  if (auto cs = t.find("classes"); cs != t.end()) {
    if (!cs->is_array()) bad(where + ".classes", "must be a list");
    for (const json& c : *cs) {
      if (!c.is_string()) bad(where + ".classes", "must be strings");
      out.classes.push_back(c.get<std::string>());
    }
  }
  const std::string last = out.shape.empty() ? "" : out.shape.back();
  const bool fixed = !last.empty() && last.find_first_not_of("0123456789") == std::string::npos;
  for (auto [what, n] : {std::pair<const char*, std::size_t>{"features", out.features.size()},
                         {"classes", out.classes.size()}}) {
    if (n && fixed && std::to_string(n) != last)
      bad(where, std::to_string(n) + " " + what + " for a last axis of " + last);
  }
  return out;
}

}  // namespace

namespace detail {

std::optional<IOSignature> readIOSignature(const json& io, const std::string& source) {
  if (io.is_null()) return std::nullopt;
  const std::string where = source + ": io";
  if (!io.is_object()) bad(where, "must be an object");
  IOSignature sig;
  sig.model = str(io, "model", where, false);
  sig.framework = str(io, "framework", where, false);
  for (auto [key, input] : {std::pair<const char*, bool>{"inputs", true}, {"outputs", false}}) {
    auto it = io.find(key);
    if (it == io.end() || !it->is_array()) bad(where + "." + key, "must be a list");
    std::set<std::string> seen;
    auto& into = input ? sig.inputs : sig.outputs;
    for (std::size_t i = 0; i < it->size(); ++i) {
      const std::string w = where + "." + key + "[" + std::to_string(i) + "]";
      into.push_back(readTensor((*it)[i], w, input));
      if (!seen.insert(into.back().name).second)
        bad(where + "." + key, "tensor " + pyrepr(into.back().name) + " appears twice");
    }
  }
  if (sig.inputs.empty()) bad(where + ".inputs", "must list at least one input");
  return sig;
}

}  // namespace detail

const IOTensor& IOSignature::input(const std::string& name) const {
  std::vector<std::string> names;
  for (const auto& t : inputs) {
    if (t.name == name) return t;
    names.push_back(t.name);
  }
  throw FormatError("no input " + detail::pyrepr(name) + " in the I/O signature (it has: " +
                    detail::join(names, ", ") + ")");
}

std::vector<std::string> IOSignature::check(const std::string& name, const float* rows,
                                            std::size_t n) const {
  const IOTensor& t = input(name);
  const std::size_t k = t.features.size();
  std::vector<std::string> out;
  for (std::size_t j = 0; j < k && n; ++j) {
    const IOFeature& f = t.features[j];
    const double lo = f.min.value_or(-INFINITY), hi = f.max.value_or(INFINITY);
    std::size_t outside = 0, nan = 0;
    double seenLo = INFINITY, seenHi = -INFINITY;
    for (std::size_t i = 0; i < n; ++i) {
      const double x = rows[i * k + j];
      if (std::isnan(x)) {
        ++nan;
        continue;
      }
      seenLo = std::min(seenLo, x);
      seenHi = std::max(seenHi, x);
      if (x < lo || x > hi) ++outside;
    }
    if (!outside && !nan) continue;
    std::string line = "input " + t.name + " feature " + std::to_string(j) + " " + f.name +
                       (f.unit && !f.unit->empty() ? " [" + *f.unit + "]" : "") + ": ";
    if (outside) {
      line += std::to_string(outside) + " of " + std::to_string(n) + " values outside [" +
              (f.min ? fmt(*f.min) : "−∞") + ", " + (f.max ? fmt(*f.max) : "+∞") + "] (seen [" +
              fmt(seenLo) + ", " + fmt(seenHi) + "])";
    }
    if (nan) line += std::string(outside ? ", " : "") + std::to_string(nan) + " NaN";
    out.push_back(line);
  }
  return out;
}

void IOSignature::normalise(const std::string& name, float* rows, std::size_t n) const {
  const IOTensor& t = input(name);
  const std::size_t k = t.features.size();
  for (std::size_t j = 0; j < k; ++j) {
    if (!t.features[j].normalisation) continue;
    const IONormalisation& norm = *t.features[j].normalisation;
    for (std::size_t i = 0; i < n; ++i)
      rows[i * k + j] = static_cast<float>(norm.apply(rows[i * k + j]));
  }
}

}  // namespace hepbundle
