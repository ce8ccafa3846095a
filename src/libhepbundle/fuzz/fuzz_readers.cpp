// libFuzzer target over the readers of untrusted bytes: the manifest, a signature file (and its
// signed statement), a per-name catalogue and a trust policy. Any input must end in a
// HepbundleError or success: never a crash, a sanitizer report, a hang or unbounded memory.
// The first byte picks the reader. Built with -DHEPBUNDLE_FUZZ=ON (clang); run by ctest for a
// bounded time from the golden bundle's files as seeds.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

#include "internal.hpp"
#include "sig.hpp"

using namespace hepbundle;

namespace {
std::string scratch() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/hepbundle-fuzz-XXXXXX";
    const char* d = mkdtemp(tmpl);
    const std::string out = d ? d : "/tmp";
    ::mkdir((out + "/repo").c_str(), 0700);
    ::mkdir((out + "/repo/catalog").c_str(), 0700);
    ::mkdir((out + "/repo/catalog/atlas").c_str(), 0700);
    return out;
  }();
  return dir;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    switch (data[0] % 4) {
      case 0:
        detail::parseManifest(text, "hepbundle.json");
        break;
      case 1: {
        const std::string p = scratch() + "/hepbundle.sig";
        std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
        detail::ParsedSignature s = detail::parseSignature(p, "hepbundle.sig");
        (void)s;
        break;
      }
      case 2: {
        const std::string root = scratch() + "/repo";
        std::ofstream(root + "/catalog/atlas/tauid.json", std::ios::binary | std::ios::trunc) << text;
        Options o;
        o.repos = {root};
        o.log = [](LogLevel, const std::string&) {};
        resolve("atlas/tauid@prod", o);
        break;
      }
      default: {
        const std::string p = scratch() + "/policy.yaml";
        std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
        detail::loadPolicy(p);
        break;
      }
    }
  } catch (const HepbundleError&) {
  }
  return 0;
}
