// A Gaudi/Athena-style tool: the bundle reference is a property, resolved once in initialize()
// (signatures checked against the site policy, the catalogue digest checked), the verified
// model path kept for the whole job — as PathResolver is used today. Gaudi itself is not needed
// to show the pattern; StatusCode and the property are stand-ins.
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>

#include "hepbundle/hepbundle.hpp"

enum class StatusCode { SUCCESS, FAILURE };

class TauIdTool {
 public:
  // declareProperty("ModelRef", m_modelRef = "atlas/tauid@prod");
  std::string m_modelRef = "atlas/tauid@prod";
  std::string m_modelFile = "model/model.onnx";

  StatusCode initialize() {
    try {
      hepbundle::Options opt;  // HEPBUNDLE_PATH, HEPBUNDLE_POLICY from the job's environment
      opt.requirePolicy = true;  // production: never run an unverified model
      m_bundle = hepbundle::resolve(m_modelRef, opt);
      m_modelPath = m_bundle->path(m_modelFile);  // digest checked once, here
    } catch (const hepbundle::HepbundleError& e) {
      std::cerr << "TauIdTool ERROR " << e.className() << ": " << e.what() << "\n";  // ATH_MSG_ERROR
      return StatusCode::FAILURE;
    }
    std::cout << "TauIdTool INFO using " << m_bundle->ref() << " (manifest sha256:" << m_bundle->manifestDigest().substr(0, 12)
              << "…, signed by " << m_bundle->signers().front().identity << ")\n";
    return StatusCode::SUCCESS;
  }
  const std::string& modelPath() const { return m_modelPath; }  // → Ort::Session(env, path, …)

 private:
  std::optional<hepbundle::Bundle> m_bundle;
  std::string m_modelPath;
};

int main(int argc, char** argv) {
  TauIdTool tool;
  if (argc > 1) tool.m_modelRef = argv[1];
  if (argc > 2) tool.m_modelFile = argv[2];
  if (tool.initialize() != StatusCode::SUCCESS) return 1;
  std::cout << tool.modelPath() << "\n";
  return 0;
}
