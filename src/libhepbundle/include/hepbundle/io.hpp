// The model's I/O signature (bundle-spec/io.md), as the manifest's "io" member records it:
// input and output tensors (name, dtype, shape), the features along an input's last axis (unit,
// normalisation, allowed range) and an output's classes. The same section Python's
// hepbundle.iosig reads:
//
//   auto b = hepbundle::resolve("demo/jet-tagger@prod", opt);
//   if (auto io = b.io()) {
//     const auto& in = io->input("features");       // dtype "float32", shape {"batch", "16"}
//     auto problems = io->check("features", rows.data(), nJets);   // ranges, NaN
//     io->normalise("features", rows.data(), nJets);               // as the model takes it
//   }
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace hepbundle {

/// What is applied to a raw value x before the model: "offset/scale" gives (x + first) * second
/// (lwtnn's convention), "mean/std" gives (x - first) / second.
struct IONormalisation {
  std::string kind;
  double first = 0, second = 1;
  double apply(double x) const;
};

struct IOFeature {
  std::string name;
  std::optional<std::string> unit;
  std::string description;
  std::optional<IONormalisation> normalisation;
  std::optional<double> min, max;  ///< allowed raw values, in the unit, bounds included
};

struct IOTensor {
  std::string name;
  std::string dtype;               ///< numpy name: float32, int64, …
  std::vector<std::string> shape;  ///< "16" (a size), "N"/"batch" (a symbol), "?" (any size)
  std::string precision;           ///< the firmware's fixed-point type (ap_fixed<16,6>), or ""
  std::vector<IOFeature> features; ///< inputs: one per element of the last axis
  std::vector<std::string> classes;///< outputs: one per element of the last axis
};

struct IOSignature {
  std::string model;      ///< payload path of the model file it describes ("" if none)
  std::string framework;  ///< onnx, keras, mlflow, spec
  std::vector<IOTensor> inputs, outputs;

  /// the input tensor of that name; throws FormatError naming the inputs there are
  const IOTensor& input(const std::string& name) const;
  /// one line per feature of `input` whose values in `rows` (row-major, n rows of one value per
  /// feature, raw units) leave its allowed range or are NaN, as Python's io.check words it
  std::vector<std::string> check(const std::string& input, const float* rows, std::size_t n) const;
  /// apply each feature's recorded normalisation to `rows` in place
  void normalise(const std::string& input, float* rows, std::size_t n) const;
};

}  // namespace hepbundle
