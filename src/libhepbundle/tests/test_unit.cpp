// Unit tests of the helpers whose behaviour must equal Python's (fnmatch, repr, difflib,
// SemVer order, path rules, mountinfo parsing, JSON limits).
#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "internal.hpp"
#include "sig.hpp"

using namespace hepbundle;
using namespace hepbundle::detail;

TEST(Fnmatch, LikePython) {
  EXPECT_TRUE(fnmatchcase("atlas/tauid", "atlas/*"));
  EXPECT_TRUE(fnmatchcase("atlas", "*"));
  EXPECT_TRUE(fnmatchcase("a/b/c", "a*c"));  // '*' crosses '/'
  EXPECT_FALSE(fnmatchcase("cms/x", "atlas/*"));
  EXPECT_TRUE(fnmatchcase("tau1", "tau[0-9]"));
  EXPECT_FALSE(fnmatchcase("taux", "tau[0-9]"));
  EXPECT_TRUE(fnmatchcase("taux", "tau[!0-9]"));
  EXPECT_TRUE(fnmatchcase("a[b", "a[b"));  // unterminated bracket is literal
  EXPECT_TRUE(fnmatchcase("/DC=ch/DC=cern/OU=Users/CN=jdoe", "/DC=ch/DC=cern/OU=Users/CN=*"));
  EXPECT_FALSE(fnmatchcase("ATLAS", "atlas"));
  EXPECT_TRUE(fnmatchcase("", "*"));
  EXPECT_TRUE(fnmatchcase("x?", "x[?]"));
}

TEST(Repr, LikePython) {
  EXPECT_EQ(pyrepr("a"), "'a'");
  EXPECT_EQ(pyrepr("it's"), "\"it's\"");
  EXPECT_EQ(pyrepr("a\nb"), "'a\\nb'");
  EXPECT_EQ(pyrepr(std::string("a\0b", 3)), "'a\\x00b'");
  EXPECT_EQ(pyrepr("a\\b"), "'a\\\\b'");
}

TEST(Difflib, CloseMatches) {
  auto m = closeMatches("model/model.onx", {"model/model.onnx", "MODEL_CARD.md"}, 1, 0.6);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0], "model/model.onnx");
  EXPECT_TRUE(closeMatches("zzz", {"model/model.onnx"}, 1, 0.6).empty());
  EXPECT_EQ(closeMatches("prdo", {"1.0.0", "prod"}, 3, 0.5), std::vector<std::string>{"prod"});
}

TEST(Semver, OrderAndValidity) {
  for (const char* v : {"1.2.0", "0.3.0-rc.1", "1.0.0+build.5", "10.20.30"}) EXPECT_TRUE(isSemver(v)) << v;
  for (const char* v : {"1.2", "01.2.0", "1.2.0-01", "1.2.0-", "v1.2.0", "1.2.0+", ""}) EXPECT_FALSE(isSemver(v)) << v;
  EXPECT_LT(versionKey("1.2.0-rc.1"), versionKey("1.2.0"));
  EXPECT_LT(versionKey("1.2.0-rc.2"), versionKey("1.2.0-rc.10"));
  EXPECT_LT(versionKey("1.9.0"), versionKey("1.10.0"));
  EXPECT_LT(versionKey("1.0.0-alpha"), versionKey("1.0.0-alpha.1"));
  EXPECT_LT(versionKey("1.0.0-1"), versionKey("1.0.0-alpha"));
  EXPECT_TRUE(isPrerelease("1.0.0-rc.1"));
  EXPECT_FALSE(isPrerelease("1.0.0+b"));
}

TEST(Names, Rules) {
  EXPECT_TRUE(isNameValid("atlas/tauid"));
  EXPECT_TRUE(isNameValid("cms-l1t/jet.tagger_2"));
  EXPECT_FALSE(isNameValid("Atlas/tauid"));
  EXPECT_FALSE(isNameValid("atlas"));
  EXPECT_FALSE(isNameValid("atlas/tau/id"));
  EXPECT_FALSE(isNameValid("-atlas/x"));
  EXPECT_TRUE(isAlias("prod"));
  EXPECT_FALSE(isAlias("1.2.0"));
}

TEST(Paths, Rules) {
  EXPECT_NO_THROW(checkRelpath("model/model.onnx"));
  EXPECT_NO_THROW(checkRelpath("docs/caf\xc3\xa9.md"));  // NFC é
  for (const char* bad : {"", "/abs", "a/../b", "a//b", "./a", "a/", "C:/x", "a\\b", "a/.", "cafe\xcc\x81"})
    EXPECT_THROW(checkRelpath(bad), PathError) << bad;
  EXPECT_THROW(checkRelpath(std::string("a\0b", 3)), PathError);
  EXPECT_THROW(checkRelpath(std::string(300, 'a')), PathError);
  EXPECT_THROW(checkCollisions({"Model.onnx", "model.onnx"}), PathError);
  EXPECT_NO_THROW(checkCollisions({"a", "b"}));
  EXPECT_TRUE(isReserved("hepbundle.sig"));
  EXPECT_TRUE(isReserved("hepbundle.author.sig"));
  EXPECT_TRUE(isReserved(".cvmfscatalog"));
  EXPECT_FALSE(isReserved("docs/hepbundle.author.sig"));
  try {
    checkRelpath("a/../b");
  } catch (const PathError& e) {
    EXPECT_STREQ(e.what(), "path 'a/../b' has an empty, '.' or '..' segment; paths must stay inside the bundle");
  }
}

TEST(Mountinfo, OnlyCvmfs2Fuse) {
  const std::string text =
      "36 35 0:32 / /cvmfs/atlas.cern.ch rw,nosuid - fuse cvmfs2 rw,user_id=0\n"
      "37 35 0:33 / /cvmfs/ml\\040x.cern.ch rw - fuse.cvmfs2 cvmfs2 rw\n"
      "38 35 0:34 / /home rw - ext4 /dev/sda1 rw\n"
      "39 35 0:35 / /fake rw - fuse sshfs rw\n";
  auto m = parseMountinfo(text);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0], "/cvmfs/atlas.cern.ch");
  EXPECT_EQ(m[1], "/cvmfs/ml x.cern.ch");
}

TEST(Json, DepthAndTruncation) {
  EXPECT_THROW(parseJson(std::string(100000, '[') + std::string(100000, ']'), "x.json"), FormatError);
  EXPECT_THROW(parseJson("{\"a\": [1, 2", "x.json"), FormatError);
  EXPECT_THROW(parseJson("\xff\xfe", "x.json"), FormatError);
  EXPECT_NO_THROW(parseJson("{\"a\": [[[1]]]}", "x.json"));
  try {
    parseJson("{", "m.json");
  } catch (const FormatError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("m.json: not valid JSON: ", 0), 0u) << e.what();
  }
}

TEST(Time, Utc) {
  EXPECT_EQ(parseUtc("1970-01-01T00:00:10Z").value(), 10);
  EXPECT_FALSE(parseUtc("2026-13-01T00:00:00Z"));
  EXPECT_FALSE(parseUtc("2026-01-01 00:00:00"));
  EXPECT_EQ(formatUtc(86400), "1970-01-02T00:00:00Z");
}

TEST(CanonicalJson, ByteForByteAsPython) {
  // hepbundle.manifest.canonical_json of the same object (sorted keys, 2-space indent, UTF-8 not
  // escaped, controls escaped, DEL raw, trailing newline): statement digests chain across both
  const json body = json::parse(R"({"type": "publish", "name": "atlas/tauid", "seq": 3, "previous": null, "serial": 17,
    "reason": "bad \"cal\"\n\u00e9\u0001\u007f", "e": {}, "f": [], "g": [1, {"z": true, "a": false}]})");
  EXPECT_EQ(canonicalJson(body),
            "{\n  \"e\": {},\n  \"f\": [],\n  \"g\": [\n    1,\n    {\n      \"a\": false,\n      \"z\": true\n    }\n  ],\n"
            "  \"name\": \"atlas/tauid\",\n  \"previous\": null,\n  \"reason\": \"bad \\\"cal\\\"\\n\xc3\xa9\\u0001\x7f\",\n"
            "  \"seq\": 3,\n  \"serial\": 17,\n  \"type\": \"publish\"\n}\n");
  EXPECT_EQ(statementDigest(body), "sha256:b497684be9d9b3c0934e98cf220910c9fcb1778743234bf85a0b9caf9f178c69");
}

// keyId and publicKeyFromPem read and write EC SubjectPublicKeyInfo themselves (x509.cpp): the
// identity must stay the sha256 of the PEM OpenSSL writes, the key the one OpenSSL decodes
namespace {
std::string opensslPem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, key);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  const std::string pem(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return pem;
}
void expectSameAsOpenSSL(EVP_PKEY* gen, const std::string& what) {
  const std::string pem = opensslPem(gen);
  const auto key = publicKeyFromPem(pem, what);
  EXPECT_EQ(EVP_PKEY_eq(key.get(), gen), 1) << what;
  EXPECT_EQ(keyId(key.get()), "sha256:" + sha256Hex(pem)) << what;
  EXPECT_EQ(keyId(gen), "sha256:" + sha256Hex(pem)) << what;
}
}  // namespace

TEST(Keys, OwnSpkiCodecEqualsOpenSSLs) {
  for (const char* curve : {"P-256", "P-384", "P-521"}) {
    EVP_PKEY* gen = EVP_EC_gen(curve);
    ASSERT_NE(gen, nullptr) << curve;
    expectSameAsOpenSSL(gen, curve);
    EVP_PKEY_free(gen);
  }
  // not a canonical uncompressed named-curve SPKI: decoded by OpenSSL, the same identity
  EVP_PKEY* gen = EVP_EC_gen("P-256");
  EVP_PKEY_set_utf8_string_param(gen, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "compressed");
  expectSameAsOpenSSL(gen, "compressed");
  EVP_PKEY_free(gen);
}

// the per-process policy memo (policy.cpp): the same parsed policy while the policy file and the
// key it names keep their identity; read again when either changes; never kept while fresh
TEST(PolicyMemo, KeptUntilAFileItReadChanges) {
  char tmpl[] = "/tmp/hepbundle-memo-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const auto writeKey = [&] {
    EVP_PKEY* k = EVP_EC_gen("P-256");
    FILE* f = std::fopen((dir + "/k.pem").c_str(), "w");
    PEM_write_PUBKEY(f, k);
    std::fclose(f);
    EVP_PKEY_free(k);
  };
  const auto writePolicy = [&](const char* ns) {
    std::ofstream(dir + "/policy.yaml") << "version: 1\nrules:\n  - namespace: " << ns << "\n    signers: [{key: k.pem}]\n";
  };
  writeKey();
  writePolicy("atlas");
  const std::string path = dir + "/policy.yaml";
  EXPECT_NE(loadPolicy(path), loadPolicy(path));  // files changed this second: read each time
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  const auto first = loadPolicy(path);
  EXPECT_EQ(loadPolicy(path), first);
  writeKey();  // the key file replaced: read again
  EXPECT_NE(loadPolicy(path), first);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  const auto second = loadPolicy(path);
  EXPECT_EQ(loadPolicy(path), second);
  writePolicy("cms");  // the policy file rewritten: read again
  EXPECT_NE(loadPolicy(path), second);
  std::remove((dir + "/k.pem").c_str());
  std::remove(path.c_str());
  rmdir(dir.c_str());
}
