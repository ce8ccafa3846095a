// libFuzzer target over the readers of untrusted bytes: the manifest, a signature file (and its
// signed statement), a per-name catalogue, a trust policy, a repository trust root and a
// catalogue's signed statements (checked under a policy that signs the catalogue), a validity
// section and a job's context. Any input must end in a HepbundleError or success: never a crash,
// a sanitizer report, a hang or unbounded memory. The first byte picks the reader. Built with
// -DHEPBUNDLE_FUZZ=ON (clang); run by ctest for a bounded time from the golden bundle's files as
// seeds.
#include <openssl/evp.h>
#include <openssl/pem.h>
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
    // a format-2 repository (what Python writes): the per-name catalogue under bundles/<ns>/_catalog
    for (const char* d : {"/repo", "/repo/catalog", "/repo/bundles", "/repo/bundles/atlas", "/repo/bundles/atlas/_catalog"})
      ::mkdir((out + d).c_str(), 0700);
    std::ofstream(out + "/repo/catalog/repository.json")
        << R"({"mediaType": "application/vnd.hepbundle.repository.v2+json", "format": 2, "name": "fuzz", "serial": 1})";
    // a key and a policy whose rule signs the catalogue, for the statements reader; no node
    // state is written
    setenv("HEPBUNDLE_NO_CACHE", "1", 1);
    EVP_PKEY* key = EVP_EC_gen("P-256");
    if (FILE* f = std::fopen((out + "/release.pub.pem").c_str(), "w")) {
      PEM_write_PUBKEY(f, key);
      std::fclose(f);
    }
    EVP_PKEY_free(key);
    std::ofstream(out + "/catalog-policy.yaml")
        << "version: 1\nrules:\n  - namespace: atlas\n    signers: [{key: release.pub.pem}]\n"
           "    catalog: [{key: release.pub.pem}]\n";
    return out;
  }();
  return dir;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    switch (data[0] % 8) {
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
        std::ofstream(root + "/bundles/atlas/_catalog/tauid.json", std::ios::binary | std::ios::trunc) << text;
        Options o;
        o.repos = {root};
        o.log = [](LogLevel, const std::string&) {};
        resolve("atlas/tauid@prod", o);
        break;
      }
      case 4:
        detail::policyFromDocument(text, "policy", "trust.json", scratch());
        break;
      case 5: {
        static const auto policy = detail::loadPolicy(scratch() + "/catalog-policy.yaml");
        const detail::json doc = detail::parseJson(text, "statements");
        if (!doc.is_array()) break;
        const auto statements = detail::ojson::parse(text);
        detail::CatalogEntry e{"atlas/tauid", "1.0.0", std::string(64, 'a'), false, std::string("prod"), true, &statements,
                               detail::sha256Hex(text)};
        Options o;
        o.log = [](LogLevel, const std::string&) {};
        detail::checkCatalogStatements(e, policy, {"fuzz", 1 << 30, "catalog/repository.json", std::nullopt}, o);
        break;
      }
      case 6:  // a validity section (bundle-spec/validity.md), then a context against it
        detail::parseScope(detail::parseJson(text, "validity"), "validity").covers(detail::parseContext("run=250,release=Athena,25.0.1", "context"));
        break;
      case 7: {  // a job's context (HEPBUNDLE_CONTEXT), then a scope judging it
        const detail::Context ctx = detail::parseContext(text, "context");
        detail::Scope scope;
        scope.runs.push_back({"200", std::string("299")});
        scope.globs.push_back({"releases", {"Athena 25.0.*"}});
        scope.excludedBy(ctx);
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
