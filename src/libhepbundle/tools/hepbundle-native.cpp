// hepbundle-native: the native library's command line, for shell scripts and for the
// conformance test (tests/test_native_conformance.py) that holds it equal to Python's hepbundle.
//
//   hepbundle-native verify PATH|REF [--policy P] [--json]      signatures + every file
//                                                              (--verify integrity: files only)
//   hepbundle-native resolve REF [--policy P] [--allow-yanked]  prints the bundle directory
//   hepbundle-native path REF FILE [--policy P]                 prints the verified file path
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "hepbundle/hepbundle.hpp"

namespace {

const char* kUsage =
    "usage: hepbundle-native verify PATH|REF [options]\n"
    "       hepbundle-native resolve REF [options]\n"
    "       hepbundle-native path REF FILE [options]\n"
    "\n"
    "Verify and resolve hepbundle bundles with the native C++ library (no Python).\n"
    "  verify   check the signatures against the trust policy, then every file\n"
    "  resolve  find REF over HEPBUNDLE_PATH, check the catalogue digest and signatures;\n"
    "           print the bundle directory\n"
    "  path     as resolve, then print the verified absolute path of FILE\n"
    "\n"
    "options:\n"
    "  --policy FILE     trust policy (default: HEPBUNDLE_POLICY, else the trust root of the\n"
    "                    repository, once pinned or accepted; without one: refused)\n"
    "  --repo DIR        repository to search (repeatable; default: HEPBUNDLE_PATH)\n"
    "  --allow-yanked    accept a yanked version (with a warning)\n"
    "  --context CTX     the job's context, run=456789,release=CMSSW_15_0_3 (default:\n"
    "                    HEPBUNDLE_CONTEXT): a version whose validity scope excludes it is\n"
    "                    refused; REF ns/name@valid picks the newest release covering it\n"
    "  --verify MODE     lazy (default), full, integrity (file digests only, signatures not\n"
    "                    checked: never reported as verified) or none\n"
    "  --no-cache        do not use the node verification cache\n"
    "  --json            print one JSON object (ok, error class, message, …)\n"
    "exit codes: 0 ok, 1 verification failed, 2 any other error\n";

nlohmann::json signersJson(const hepbundle::Bundle& b) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& s : b.signers()) {
    nlohmann::json one{{"kind", s.kind}, {"identity", s.identity}, {"file", s.file}, {"role", s.role}, {"signedAt", s.signedAt}};
    if (!s.timestampedAt.empty()) one["timestampedAt"] = s.timestampedAt;
    out.push_back(one);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> pos;
  hepbundle::Options opt;
  bool asJson = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "hepbundle-native: " << a << " needs a value\n" << kUsage;
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    } else if (a == "--policy") {
      opt.policy = value();
    } else if (a == "--repo") {
      opt.repos.push_back(value());
    } else if (a == "--context") {
      opt.context = value();
    } else if (a == "--allow-yanked") {
      opt.allowYanked = true;
    } else if (a == "--no-cache") {
      opt.useCache = false;
    } else if (a == "--json") {
      asJson = true;
    } else if (a == "--verify") {
      const std::string m = value();
      if (m == "lazy") opt.verify = hepbundle::Verify::Lazy;
      else if (m == "full") opt.verify = hepbundle::Verify::Full;
      else if (m == "integrity") opt.verify = hepbundle::Verify::Integrity;
      else if (m == "none") opt.verify = hepbundle::Verify::None;
      else {
        std::cerr << "hepbundle-native: --verify must be lazy, full, integrity or none\n";
        return 2;
      }
    } else if (a.size() > 1 && a[0] == '-' && a != "-") {
      std::cerr << "hepbundle-native: unknown option " << a << "\n" << kUsage;
      return 2;
    } else {
      pos.push_back(a);
    }
  }
  if (pos.empty()) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string cmd = pos[0];
  const std::size_t want = cmd == "path" ? 3 : 2;
  if ((cmd != "verify" && cmd != "resolve" && cmd != "path") || pos.size() != want) {
    std::cerr << "hepbundle-native: bad arguments\n" << kUsage;
    return 2;
  }
  try {
    // verify checks every file: at open under a policy, after it when integrity only was asked for
    const bool checkAll = cmd == "verify" && opt.verify != hepbundle::Verify::None;
    if (checkAll && opt.verify != hepbundle::Verify::Integrity) opt.verify = hepbundle::Verify::Full;
    hepbundle::Bundle b = hepbundle::resolve(pos[1], opt);
    if (checkAll && opt.verify == hepbundle::Verify::Integrity) b.verify().raiseForProblems(b.ref());
    const std::string out = cmd == "path" ? b.path(pos[2]) : b.root();
    if (asJson) {
      std::cout << nlohmann::json{{"ok", true},
                                  {"ref", b.ref()},
                                  {"path", out},
                                  {"manifest_sha256", b.manifestDigest()},
                                  {"verified", b.signaturesChecked()},
                                  {"signers", b.signaturesChecked() ? signersJson(b) : nlohmann::json()}}
                       .dump()
                << "\n";
    } else {
      std::cout << out << "\n";
    }
    return 0;
  } catch (const hepbundle::HepbundleError& e) {
    if (asJson)
      std::cout << nlohmann::json{{"ok", false}, {"error", e.className()}, {"message", e.what()}}.dump(
                       -1, ' ', false, nlohmann::json::error_handler_t::replace)
                << "\n";
    std::cerr << "hepbundle-native: error: " << e.what() << "\n";
    return e.exitCode();
  } catch (const std::exception& e) {
    if (asJson) std::cout << nlohmann::json{{"ok", false}, {"error", "InternalError"}, {"message", e.what()}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    std::cerr << "hepbundle-native: internal error: " << e.what() << "\n";
    return 2;
  }
}
