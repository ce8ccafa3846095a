// The I/O signature (bundle-spec/io.md) read by the native library: the manifest's io member as
// Python writes it (the example of bundle-spec/io.md), the range check and the normalisation of
// Python's hepbundle.iosig, and a malformed member refused at open with one line.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "hepbundle/hepbundle.hpp"
#include "internal.hpp"

namespace fs = std::filesystem;
using namespace hepbundle;
using detail::json;

namespace {

// the manifest member of bundle-spec/io.md § 1
const char* kIO = R"({
  "model": "model/model.onnx", "framework": "onnx",
  "inputs": [{"name": "x", "dtype": "float32", "shape": ["N", 3], "precision": "ap_fixed<16,6>",
    "features": [
      {"name": "jet_pt", "unit": "GeV", "normalisation": {"offset": -20.0, "scale": 0.005}, "range": {"min": 20.0, "max": 3000.0}},
      {"name": "jet_eta", "unit": "", "normalisation": {"mean": 0.0, "std": 1.4}, "range": {"min": -2.5, "max": 2.5}},
      {"name": "jet_mass", "unit": "GeV", "range": {"min": 0.0}}]}],
  "outputs": [{"name": "probs", "dtype": "float32", "shape": ["N", 2], "classes": ["b", "light"]}]
})";

class IO : public ::testing::Test {
 protected:
  fs::path dir;
  void SetUp() override {
    dir = fs::temp_directory_path() / ("hepbundle-io-" + std::to_string(getpid()) + "-" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir / "model");
    unsetenv("HEPBUNDLE_POLICY");
    setenv("HEPBUNDLE_NO_CACHE", "1", 1);
  }
  void TearDown() override { fs::remove_all(dir); }
  /// an unsigned bundle (opened integrity-only, no policy) whose manifest has this io member
  Bundle make(const json& io) {
    const std::string model = "not really onnx";
    std::ofstream(dir / "model" / "model.onnx", std::ios::binary) << model;
    json m = {{"mediaType", "application/vnd.hepbundle.manifest.v1+json"},
              {"name", "demo/tagger"},
              {"version", "1.0.0"},
              {"created", "2026-12-02T00:00:00Z"},
              {"hashing", {{"algorithm", "sha256"}, {"ignore", json::array()}, {"symlinks", "refuse"}}},
              {"files", {{{"path", "model/model.onnx"}, {"size", model.size()},
                          {"sha256", detail::sha256Hex(model)}, {"role", "model"}}}}};
    if (!io.is_null()) m["io"] = io;
    std::ofstream(dir / "hepbundle.json") << m.dump(2) << "\n";
    Options o;
    o.log = [](LogLevel, const std::string&) {};
    o.verify = Verify::Integrity;  // an unsigned hand-made bundle: asked for by name
    return open(dir.string(), o);
  }
};

TEST_F(IO, ReadsTheSectionPythonWrites) {
  auto io = make(json::parse(kIO)).io();
  ASSERT_TRUE(io.has_value());
  EXPECT_EQ(io->model, "model/model.onnx");
  const IOTensor& x = io->input("x");
  EXPECT_EQ(x.dtype, "float32");
  EXPECT_EQ(x.shape, (std::vector<std::string>{"N", "3"}));
  EXPECT_EQ(x.precision, "ap_fixed<16,6>");
  ASSERT_EQ(x.features.size(), 3u);
  EXPECT_EQ(*x.features[0].unit, "GeV");
  EXPECT_EQ(x.features[1].normalisation->kind, "mean/std");
  EXPECT_FALSE(x.features[2].normalisation.has_value());
  EXPECT_FALSE(x.features[2].max.has_value());
  EXPECT_EQ(io->outputs[0].classes, (std::vector<std::string>{"b", "light"}));
  EXPECT_FALSE(make(nullptr).io().has_value());
  try {
    io->input("jets");
    FAIL() << "no input jets";
  } catch (const FormatError& e) {
    EXPECT_STREQ(e.what(), "no input 'jets' in the I/O signature (it has: x)");
  }
}

TEST_F(IO, CheckAndNormaliseLikePython) {
  auto io = make(json::parse(kIO)).io();
  std::vector<float> rows = {100, 0.7f, 50, 2500, -1.4f, 80};
  EXPECT_TRUE(io->check("x", rows.data(), 2).empty());
  std::vector<float> mev = {100000, 0.7f, 50, 2500000, -1.4f, NAN};  // pt in MeV, a NaN mass
  auto problems = io->check("x", mev.data(), 2);
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_EQ(problems[0], "input x feature 0 jet_pt [GeV]: 2 of 2 values outside [20, 3000] (seen [100000, 2.5e+06])");
  EXPECT_EQ(problems[1], "input x feature 2 jet_mass [GeV]: 1 NaN");
  io->normalise("x", rows.data(), 2);
  EXPECT_FLOAT_EQ(rows[0], (100 - 20) * 0.005f);
  EXPECT_FLOAT_EQ(rows[1], 0.7f / 1.4f);
  EXPECT_FLOAT_EQ(rows[2], 50);  // no normalisation recorded: as is
  EXPECT_FLOAT_EQ(rows[4], -1.0f);
}

TEST_F(IO, MalformedSectionRefusedAtOpen) {
  json io = json::parse(kIO);
  io["inputs"][0]["features"].erase(2);  // 2 features for a last axis of 3
  try {
    make(io);
    FAIL() << "opened";
  } catch (const FormatError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(": io.inputs[0]: 2 features for a last axis of 3"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos);
  }
  io = json::parse(kIO);
  io["inputs"][0]["dtype"] = "float";
  EXPECT_THROW(make(io), FormatError);
  io = json::parse(kIO);
  io["inputs"][0]["features"][0]["normalisation"] = {{"mean", 0}, {"std", 0}};
  EXPECT_THROW(make(io), FormatError);
}

}  // namespace
