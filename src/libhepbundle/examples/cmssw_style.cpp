// A CMSSW-style module: the reference comes from the ParameterSet, is resolved in the
// constructor/beginJob (like edm::FileInPath, but signed and catalogued) and the verified path is
// handed to the inference backend; every event reuses it. The edm types are stand-ins.
#include <iostream>
#include <map>
#include <string>

#include "hepbundle/hepbundle.hpp"

namespace edm {
struct ParameterSet {
  std::map<std::string, std::string> values;
  std::string getParameter(const std::string& k) const { return values.at(k); }
};
struct Exception : std::runtime_error {
  using std::runtime_error::runtime_error;
};
}  // namespace edm

class JetTaggerProducer {
 public:
  explicit JetTaggerProducer(const edm::ParameterSet& cfg) : bundle_(open(cfg)), model_(bundle_.path(cfg.getParameter("modelFile"))) {}
  void beginJob() const { std::cout << "JetTaggerProducer: " << bundle_.ref() << " -> " << model_ << "\n"; }
  const std::string& model() const { return model_; }

 private:
  static hepbundle::Bundle open(const edm::ParameterSet& cfg) {
    try {
      hepbundle::Options opt;
      opt.requirePolicy = true;
      return hepbundle::resolve(cfg.getParameter("modelRef"), opt);
    } catch (const hepbundle::HepbundleError& e) {
      throw edm::Exception(std::string("Configuration: hepbundle ") + e.className() + ": " + e.what());
    }
  }
  hepbundle::Bundle bundle_;
  std::string model_;
};

int main(int argc, char** argv) {
  edm::ParameterSet cfg{{{"modelRef", argc > 1 ? argv[1] : "cms/jettag@prod"}, {"modelFile", argc > 2 ? argv[2] : "model/model.onnx"}}};
  try {
    JetTaggerProducer p(cfg);
    p.beginJob();
    std::cout << p.model() << "\n";
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
