// Unit tests of the helpers whose behaviour must equal Python's (fnmatch, repr, difflib,
// SemVer order, path rules, mountinfo parsing, JSON limits).
#include <gtest/gtest.h>

#include "internal.hpp"

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
