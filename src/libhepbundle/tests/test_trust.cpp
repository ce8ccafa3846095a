// Trust by default in C++ alone (no Python): a repository holding the golden bundle and a trust
// root (catalog/trust.json, keys and CA inline) resolves only when this node authenticates the
// trust root — pinned by HEPBUNDLE_TRUST_ROOT, or accepted in the node cache's
// known-repositories.json — and refuses a changed one; many threads resolve at once.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "hepbundle/hepbundle.hpp"
#include "internal.hpp"

namespace fs = std::filesystem;
using namespace hepbundle;
using detail::json;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class TrustRoot : public ::testing::Test {
 protected:
  fs::path dir, repo, cache;
  std::string digest;

  void SetUp() override {
    dir = fs::temp_directory_path() / ("hepbundle-trust-" + std::to_string(getpid()) + "-" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    repo = dir / "repo";
    cache = dir / "cache";
    const fs::path golden = HEPBUNDLE_GOLDEN;
    fs::create_directories(repo / "bundles/demo/jet-tagger-onnx");
    fs::create_directories(repo / "catalog/demo");
    fs::copy(golden / "bundle", repo / "bundles/demo/jet-tagger-onnx/1.0.0", fs::copy_options::recursive);
    const std::string manifest = detail::sha256Hex(slurp(golden / "bundle/hepbundle.json"));
    std::ofstream(repo / "catalog/repository.json")
        << R"({"mediaType": "application/vnd.hepbundle.repository.v1+json", "format": 1, "name": "golden-repo", "serial": 1,)"
        << R"( "created": "2026-01-01T00:00:00Z", "updated": "2026-01-01T00:00:00Z"})";
    std::ofstream(repo / "catalog/demo/jet-tagger-onnx.json")
        << R"({"mediaType": "application/vnd.hepbundle.catalog.v1+json", "name": "demo/jet-tagger-onnx", "versions": {"1.0.0": {)"
        << R"("manifestSha256": ")" << manifest
        << R"(", "path": "bundles/demo/jet-tagger-onnx/1.0.0", "created": "2025-11-25T00:00:00Z", "published": "2026-01-01T00:00:00Z",)"
        << R"( "yanked": null}}, "aliases": {"prod": "1.0.0"}, "aliasHistory": []})";
    // the golden policy, self-contained: the release key and the grid CA inline as PEM
    const json policy = {
        {"version", 1},
        {"rules",
         {{{"namespace", "demo"},
           {"signers",
            {{"all_of",
              {{{"key", slurp(golden / "release.pub.pem")}, {"role", "primary"}},
               {{"x509", {{"ca", {slurp(golden / "ca.pem")}}, {"subject", "/DC=ch/DC=cern/OU=Users/CN=golden/*"}}},
                {"role", "author"}}}}}}}}}};
    const std::string root = detail::canonicalJson(
        json{{"mediaType", "application/vnd.hepbundle.trust-root.v1+json"}, {"repository", "golden-repo"}, {"policy", policy}});
    std::ofstream(repo / "catalog/trust.json", std::ios::binary) << root;
    digest = "sha256:" + detail::sha256Hex(root);
    setenv("HEPBUNDLE_CACHE_DIR", cache.c_str(), 1);
    for (const char* v : {"HEPBUNDLE_POLICY", "HEPBUNDLE_TRUST_ROOT", "HEPBUNDLE_PATH", "HEPBUNDLE_REPO"}) unsetenv(v);
  }
  void TearDown() override {
    unsetenv("HEPBUNDLE_TRUST_ROOT");
    fs::remove_all(dir);
  }
  Options opts() const {
    Options o;
    o.repos = {repo.string()};
    o.log = [](LogLevel, const std::string&) {};
    return o;
  }
  void accept(const std::string& sha) {
    fs::create_directories(cache);  // replaced, as `hepbundle repo trust` writes it
    std::ofstream(cache / ".tmp-known")
        << R"({"golden-repo": {"sha256": ")" << sha << R"(", "path": ")" << repo.string() << R"(", "accepted": "2026-12-02T00:00:00Z"}})";
    fs::rename(cache / ".tmp-known", cache / "known-repositories.json");
  }
  template <class E>
  std::string refused(const std::string& ref = "demo/jet-tagger-onnx@prod") {
    try {
      resolve(ref, opts());
    } catch (const E& e) {
      return e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "wrong exception: " << e.what();
      return "";
    }
    ADD_FAILURE() << "not refused";
    return "";
  }
};

}  // namespace

TEST_F(TrustRoot, NotAcceptedIsRefusedSayingHowToAccept) {
  const std::string msg = refused<PolicyError>();
  EXPECT_NE(msg.find("the trust root of repository 'golden-repo' (" + repo.string() + ") is not accepted on this node"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("HEPBUNDLE_TRUST_ROOT=" + digest), std::string::npos) << msg;
}

TEST_F(TrustRoot, PinnedVerifiesWithoutAPolicy) {
  setenv("HEPBUNDLE_TRUST_ROOT", ("sha256:" + std::string(64, '0') + "," + digest).c_str(), 1);
  Bundle b = resolve("demo/jet-tagger-onnx@prod", opts());
  EXPECT_TRUE(b.signaturesChecked());
  ASSERT_EQ(b.signers().size(), 2u);
  EXPECT_EQ(b.signers()[1].identity, "/DC=ch/DC=cern/OU=Users/CN=golden/CN=Golden Author");
  // the bundle opened by path is judged by the trust root of the repository it is in
  EXPECT_TRUE(open((repo / "bundles/demo/jet-tagger-onnx/1.0.0").string(), opts()).signaturesChecked());
  setenv("HEPBUNDLE_TRUST_ROOT", ("sha256:" + std::string(64, 'a')).c_str(), 1);
  EXPECT_NE(refused<PolicyError>().find("which HEPBUNDLE_TRUST_ROOT does not pin"), std::string::npos);
}

TEST_F(TrustRoot, AcceptedOnceThenChangedIsRefused) {
  accept(digest);
  EXPECT_TRUE(resolve("demo/jet-tagger-onnx@prod", opts()).signaturesChecked());
  accept("sha256:" + std::string(64, 'b'));
  EXPECT_NE(refused<PolicyError>().find("CHANGED: it is " + digest), std::string::npos);
}

TEST_F(TrustRoot, ManyThreadsResolveAtOnce) {
  accept(digest);
  std::atomic<int> ok{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 8; ++i)
    ts.emplace_back([&] {
      for (int k = 0; k < 10; ++k)
        if (resolve("demo/jet-tagger-onnx@prod", opts()).path("model/model.onnx").size() > 0) ++ok;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 80);
}
