// Bundle-level tests on the golden signed v1 bundle (tests/golden/signed-v1): open, lazy path,
// full verify, tampering, many threads, the C API, and hostile inputs (truncated and deeply nested
// JSON, a 300 MB manifest, FIFOs, NUL in paths) that must give one clean error.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "hepbundle/hepbundle.h"
#include "hepbundle/hepbundle.hpp"

namespace fs = std::filesystem;
using namespace hepbundle;

namespace {

class Golden : public ::testing::Test {
 protected:
  fs::path dir, bundle, policy;
  void SetUp() override {
    dir = fs::temp_directory_path() / ("hepbundle-test-" + std::to_string(getpid()) + "-" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
    fs::copy(HEPBUNDLE_GOLDEN, dir, fs::copy_options::recursive);
    bundle = dir / "bundle";
    policy = writePolicy(
        "version: 1\nrules:\n  - namespace: demo\n    signers:\n      all_of:\n"
        "        - {key: release.pub.pem, role: primary}\n"
        "        - x509: {ca: ca.pem, subject: '/DC=ch/DC=cern/OU=Users/CN=golden/*'}\n"
        "          role: author\n");
    setenv("HEPBUNDLE_CACHE_DIR", (dir / "cache").c_str(), 1);
  }
  void TearDown() override { fs::remove_all(dir); }
  fs::path writePolicy(const std::string& text, const std::string& name = "policy.yaml") {
    std::ofstream(dir / name) << text;
    return dir / name;
  }
  Options opts() const {
    Options o;
    o.policy = policy.string();
    o.log = [](LogLevel, const std::string&) {};
    return o;
  }
  void write(const fs::path& p, const std::string& data) { std::ofstream(p, std::ios::binary) << data; }
};

template <class E, class F>
std::string expectThrow(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "no exception";
  return "";
}

}  // namespace

TEST_F(Golden, OpenVerifiesBothSignatures) {
  Bundle b = open(bundle.string(), opts());
  EXPECT_EQ(b.ref(), "demo/jet-tagger-onnx@1.0.0");
  EXPECT_EQ(b.manifestDigest(), "ad115eb06ec58503d6f08140486eb7ee5efcbd6535cc215f36a7b7e75e6d0611");
  ASSERT_EQ(b.signers().size(), 2u);
  EXPECT_EQ(b.signers()[0].kind, "key");
  EXPECT_EQ(b.signers()[1].identity, "/DC=ch/DC=cern/OU=Users/CN=golden/CN=Golden Author");
  EXPECT_EQ(b.path("model/model.onnx"), (bundle / "model/model.onnx").string());
  EXPECT_TRUE(b.verify().ok());
}

TEST_F(Golden, LazyCheckCatchesAFlipOnFirstUse) {
  Bundle b = open(bundle.string(), opts());
  {
    std::fstream f(bundle / "model/model.onnx", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(10);
    f.put('\x7f');
  }
  auto msg = expectThrow<IntegrityError>([&] { b.path("model/model.onnx"); });
  EXPECT_EQ(msg, "demo/jet-tagger-onnx@1.0.0: modified model/model.onnx (sha256 differs)");
  EXPECT_EQ(b.path("MODEL_CARD.md"), (bundle / "MODEL_CARD.md").string());
  auto r = b.verify();
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_EQ(r.problems[0].kind, "modified");
}

TEST_F(Golden, EveryProblemReportedAtOnce) {
  fs::remove(bundle / "MODEL_CARD.md");
  write(bundle / "extra.txt", "x");
  fs::resize_file(bundle / "model/model.onnx", 3);
  Options o = opts();
  o.verify = Verify::Full;
  auto msg = expectThrow<IntegrityError>([&] { open(bundle.string(), o); });
  EXPECT_EQ(msg,
            "demo/jet-tagger-onnx@1.0.0 failed integrity verification: extra extra.txt (not listed in the manifest); "
            "missing MODEL_CARD.md; modified model/model.onnx (size 3 != 512)");
}

TEST_F(Golden, PolicyFailures) {
  Options o = opts();
  o.policy = writePolicy("version: 1\nrules:\n  - namespace: cms\n    signers: [{key: release.pub.pem}]\n").string();
  EXPECT_NE(expectThrow<PolicyError>([&] { open(bundle.string(), o); }).find("no rule of trust policy"), std::string::npos);
  o.policy = writePolicy(
                 "version: 1\nrules:\n  - namespace: demo\n    signers:\n"
                 "      - x509: {ca: ca.pem, subject: '/DC=ch/CN=nobody'}\n")
                 .string();
  EXPECT_NE(expectThrow<PolicyError>([&] { open(bundle.string(), o); }).find("is not allowed to sign demo/jet-tagger-onnx"),
            std::string::npos);
  o.policy = writePolicy("version: 2\nrules: []\n").string();
  EXPECT_NE(expectThrow<SpecError>([&] { open(bundle.string(), o); }).find("policy.yaml:1: version"), std::string::npos);
  o.policy = writePolicy("version: 1\nrules:\n  - namespace: x\n    signers:\n      - x509:\n          ca: ca.pem\n          subjet: '*'\n")
                 .string();
  EXPECT_EQ(expectThrow<SpecError>([&] { open(bundle.string(), o); }),
            o.policy + ":7: rules[0].signers[0].x509.subjet: unknown key (did you mean 'subject'?)");
  o.policy = writePolicy("version: 1\nrules:\n  - namespace: demo\n    signers: [{sigstore: {identity: a@b.c, issuer: https://x}}]\n").string();
  EXPECT_NE(expectThrow<PolicyError>([&] { open(bundle.string(), o); }).find("no sigstore signature"), std::string::npos);
}

TEST_F(Golden, UnsignedAndNoPolicy) {
  fs::remove(bundle / "hepbundle.sig");
  fs::remove(bundle / "hepbundle.author.sig");
  EXPECT_NE(expectThrow<SignatureError>([&] { open(bundle.string(), opts()); }).find("is unsigned"), std::string::npos);
  Options o = opts();
  o.policy.clear();
  unsetenv("HEPBUNDLE_POLICY");
  // trust by default: no policy, no trust root → refused, saying how to configure trust
  EXPECT_EQ(expectThrow<PolicyError>([&] { open(bundle.string(), o); }),
            "demo/jet-tagger-onnx@1.0.0: no trust policy configured, refusing it (signatures cannot be checked) (configure trust: "
            "publish into a repository with a trust root (hepbundle repo init --policy FILE), set HEPBUNDLE_POLICY=FILE or pass "
            "--policy/--key; or ask for integrity checks only by name (verify='integrity', --integrity-only))");
  // integrity only, asked for by name: the files are checked, the bundle is not verified
  std::vector<std::string> logged;
  o.log = [&](LogLevel, const std::string& m) { logged.push_back(m); };
  o.verify = Verify::Integrity;
  Bundle b = open(bundle.string(), o);
  EXPECT_FALSE(b.signaturesChecked());
  EXPECT_TRUE(b.signers().empty());
  EXPECT_TRUE(b.verify().ok());
  ASSERT_EQ(logged.size(), 1u);
  EXPECT_NE(logged[0].find("INTEGRITY CHECKS ONLY"), std::string::npos);
  hepbundle_bundle* c = hepbundle_open(bundle.c_str(), nullptr, 0);
  EXPECT_EQ(c, nullptr);
  EXPECT_STREQ(hepbundle_error_class(), "PolicyError");
  EXPECT_EQ(hepbundle_error_code(), 1);
  c = hepbundle_open(bundle.c_str(), nullptr, HEPBUNDLE_VERIFY_INTEGRITY);
  ASSERT_NE(c, nullptr) << hepbundle_error_message();
  EXPECT_EQ(hepbundle_verified(c), 0);
  hepbundle_close(c);
}

TEST_F(Golden, PolicyEnvironmentSetButUnusable) {
  Options o = opts();
  o.policy.clear();
  setenv("HEPBUNDLE_POLICY", " ", 1);
  EXPECT_EQ(expectThrow<PolicyError>([&] { open(bundle.string(), o); }),
            "HEPBUNDLE_POLICY is set but empty (point HEPBUNDLE_POLICY at a trust policy file, or unset it)");
  setenv("HEPBUNDLE_POLICY", (dir / "absent.yaml").c_str(), 1);
  EXPECT_EQ(expectThrow<PolicyError>([&] { open(bundle.string(), o); }),
            "HEPBUNDLE_POLICY=" + (dir / "absent.yaml").string() + ": trust policy " + (dir / "absent.yaml").string() + " does not exist");
  setenv("HEPBUNDLE_POLICY", policy.c_str(), 1);
  EXPECT_TRUE(open(bundle.string(), o).signaturesChecked());
  unsetenv("HEPBUNDLE_POLICY");
}

TEST_F(Golden, ManyThreadsShareOneBundle) {
  Bundle b = open(bundle.string(), opts());
  std::atomic<int> ok{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 16; ++i)
    ts.emplace_back([&, i] {
      for (int k = 0; k < 50; ++k) {
        Bundle mine = (k % 10 == 0) ? open(bundle.string(), opts()) : b;
        if (!mine.path(i % 2 ? "model/model.onnx" : "MODEL_CARD.md").empty()) ++ok;
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 16 * 50);
}

TEST_F(Golden, NodeCacheIsUsedAndInvalidated) {
  Options o = opts();
  auto first = open(bundle.string(), o).verify();
  EXPECT_EQ(first.cached, 0u);
  auto second = open(bundle.string(), o).verify();
  EXPECT_EQ(second.cached, 2u);
  EXPECT_EQ(second.bytes, 0u);
  // rewriting a file (same bytes) moves its ctime: hashed again
  std::string data;
  {
    std::ifstream in(bundle / "MODEL_CARD.md", std::ios::binary);
    data.assign(std::istreambuf_iterator<char>(in), {});
  }
  write(bundle / "MODEL_CARD.md", data);
  auto third = open(bundle.string(), o).verify();
  EXPECT_EQ(third.cached, 1u);
  EXPECT_TRUE(third.ok());
  // a cache file others can write is ignored
  for (auto& e : fs::recursive_directory_iterator(dir / "cache"))
    if (e.is_regular_file()) fs::permissions(e.path(), fs::perms::others_write, fs::perm_options::add);
  EXPECT_EQ(open(bundle.string(), o).verify().cached, 0u);
}

TEST_F(Golden, CApi) {
  hepbundle_bundle* b = hepbundle_open(bundle.c_str(), policy.c_str(), 0);
  ASSERT_NE(b, nullptr) << hepbundle_error_message();
  EXPECT_STREQ(hepbundle_ref(b), "demo/jet-tagger-onnx@1.0.0");
  char* p = hepbundle_path(b, "model/model.onnx");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(std::string(p), (bundle / "model/model.onnx").string());
  hepbundle_free(p);
  EXPECT_EQ(hepbundle_path(b, "nope"), nullptr);
  EXPECT_STREQ(hepbundle_error_class(), "NotInBundleError");
  EXPECT_EQ(hepbundle_error_code(), 2);
  EXPECT_STREQ(hepbundle_error_message(), "demo/jet-tagger-onnx@1.0.0 has no file 'nope'");
  EXPECT_EQ(hepbundle_verify(b), 0);
  hepbundle_close(b);
  EXPECT_EQ(hepbundle_open((dir / "absent").c_str(), nullptr, 0), nullptr);
  EXPECT_STREQ(hepbundle_error_class(), "NotABundleError");
  EXPECT_EQ(hepbundle_error_code(), 2);
  EXPECT_EQ(hepbundle_resolve("Not A Ref", nullptr, 0), nullptr);
  EXPECT_STREQ(hepbundle_error_class(), "NotFoundError");
}

// ---- hostile inputs: one clean error, never a crash, hang or unbounded memory ---------------

TEST_F(Golden, TruncatedAndNestedManifest) {
  write(bundle / "hepbundle.json", "{\"mediaType\": \"application/vnd.hepbundle.manifest.v1+json\", \"files\": [");
  EXPECT_NE(expectThrow<FormatError>([&] { open(bundle.string(), opts()); }).find("not valid JSON"), std::string::npos);
  write(bundle / "hepbundle.json", std::string(100000, '[') + std::string(100000, ']'));
  EXPECT_NE(expectThrow<FormatError>([&] { open(bundle.string(), opts()); }).find("JSON nested deeper than 64 levels"), std::string::npos);
  write(bundle / "hepbundle.json", "{\"a\":" + std::string(100000, '{'));
  EXPECT_THROW(open(bundle.string(), opts()), FormatError);
}

TEST_F(Golden, HugeManifestIsRefusedWithoutReadingIt) {
  {
    std::ofstream f(bundle / "hepbundle.json", std::ios::binary | std::ios::trunc);
  }
  fs::resize_file(bundle / "hepbundle.json", 300ull << 20);  // sparse: costs no disk
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_NE(expectThrow<FormatError>([&] { open(bundle.string(), opts()); }).find("is 314,572,800 bytes, over the limit of 33,554,432"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

TEST_F(Golden, FifosNeverBlock) {
  fs::remove(bundle / "hepbundle.author.sig");
  ASSERT_EQ(mkfifo((bundle / "hepbundle.author.sig").c_str(), 0600), 0);
  // not a regular file: not a signature file at all; the policy then misses the co-signature
  EXPECT_THROW(open(bundle.string(), opts()), PolicyError);
  fs::remove(bundle / "MODEL_CARD.md");
  ASSERT_EQ(mkfifo((bundle / "MODEL_CARD.md").c_str(), 0600), 0);
  fs::remove(bundle / "hepbundle.author.sig");
  Options o = opts();
  o.policy = writePolicy("version: 1\nrules:\n  - namespace: demo\n    signers: [{key: release.pub.pem}]\n").string();
  Bundle b = open(bundle.string(), o);
  EXPECT_THROW(b.path("MODEL_CARD.md"), IntegrityError);
  fs::remove(bundle / "hepbundle.json");
  ASSERT_EQ(mkfifo((bundle / "hepbundle.json").c_str(), 0600), 0);
  EXPECT_NE(expectThrow<FormatError>([&] { open(bundle.string(), o); }).find("is a FIFO (named pipe), not a regular file"),
            std::string::npos);
}

TEST_F(Golden, NulInPaths) {
  EXPECT_THROW(open(bundle.string() + std::string("\0x", 2), opts()), PathError);
  Bundle b = open(bundle.string(), opts());
  EXPECT_THROW(b.path(std::string("model\0/model.onnx", 17)), HepbundleError);
  std::string m;
  {
    std::ifstream in(bundle / "hepbundle.json", std::ios::binary);
    m.assign(std::istreambuf_iterator<char>(in), {});
  }
  const auto pos = m.find("model/model.onnx");
  write(bundle / "hepbundle.json", m.substr(0, pos) + "model/\\u0000model.onnx" + m.substr(pos + 16));
  EXPECT_NE(expectThrow<PathError>([&] { open(bundle.string(), opts()); }).find("contains a NUL or control character"),
            std::string::npos);
}

TEST_F(Golden, NestedSignatureAndPolicy) {
  write(bundle / "hepbundle.sig", std::string(100000, '[') + std::string(100000, ']'));
  EXPECT_NE(expectThrow<SignatureError>([&] { open(bundle.string(), opts()); }).find("malformed signature file"), std::string::npos);
  Options o = opts();
  o.policy = writePolicy("version: 1\nrules:\n  - namespace: demo\n    signers: " + std::string(50000, '[') + std::string(50000, ']') + "\n")
                 .string();
  EXPECT_THROW(open(bundle.string(), o), SpecError);
}
