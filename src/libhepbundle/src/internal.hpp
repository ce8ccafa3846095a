// Internal declarations shared by the library's translation units (not installed).
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "hepbundle/hepbundle.hpp"

namespace hepbundle::detail {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;  ///< key order kept (catalogue files, as Python reads them)

// ---- text helpers (util.cpp) -------------------------------------------------------------
/// Python's repr() of a str: 'x', "it's", with \n, \x00 … escapes
std::string pyrepr(const std::string& s);
/// fnmatch.fnmatchcase: *, ?, [seq], [!seq]; '*' matches '/' too
bool fnmatchcase(const std::string& name, const std::string& pattern);
/// difflib.get_close_matches (SequenceMatcher ratio, best first)
std::vector<std::string> closeMatches(const std::string& word,
                                      const std::vector<std::string>& possibilities, std::size_t n,
                                      double cutoff);
std::string join(const std::vector<std::string>& parts, const std::string& sep);
/// Python's str() of a JSON value (text as is, None, True/False, else its JSON)
std::string pyStr(const json& v);
bool startsWith(const std::string& s, const std::string& prefix);
bool endsWith(const std::string& s, const std::string& suffix);
bool isNameValid(const std::string& name);        // namespace/name
bool isSemver(const std::string& version);        // SemVer 2.0.0
bool isPrerelease(const std::string& version);
bool isAlias(const std::string& alias);           // ^[a-z][a-z0-9._-]{0,63}$
/// a string whose byte order is SemVer precedence (repository/refs.py version_key)
std::string versionKey(const std::string& version);
std::string hexOf(const unsigned char* data, std::size_t n);
bool isLowerHex(const std::string& s, std::size_t n);
/// "YYYY-MM-DDTHH:MM:SSZ" → seconds since the epoch; nullopt if malformed
std::optional<std::int64_t> parseUtc(const std::string& s);
std::string formatUtc(std::int64_t t, const char* fmt = "%Y-%m-%dT%H:%M:%SZ");
/// Path(p).absolute() as Python prints it: cwd-joined, '.' and empty segments dropped
std::string absolutePath(const std::string& p);
/// str(PurePosixPath(p)): empty and '.' segments dropped, trailing '/' removed ("" → ".")
std::string posixPath(const std::string& p);
std::string dirName(const std::string& p);
std::string baseName(const std::string& p);
std::string envOr(const char* name, const std::string& fallback = "");

// ---- files (util.cpp) --------------------------------------------------------------------
/// read a whole regular file (never a FIFO or device), at most max bytes; throws ReadError
struct ReadError {
  int err;            // errno, or 0 with tooBig/notRegular
  bool tooBig = false;
  bool notRegular = false;
  std::uint64_t size = 0;
  mode_t mode = 0;
};
/// "a FIFO (named pipe)", "a character device", … (src/hepbundle/regular.py describe_mode)
std::string describeMode(mode_t m);
std::string readSmallFile(const std::string& path, std::size_t max);
/// what stat says about a file's content having changed: device, inode, size, mtime, ctime
struct FileId {
  std::uint64_t dev = 0, ino = 0;
  std::int64_t size = 0, mtimeNs = 0, ctimeNs = 0;
  bool operator==(const FileId& o) const {
    return dev == o.dev && ino == o.ino && size == o.size && mtimeNs == o.mtimeNs && ctimeNs == o.ctimeNs;
  }
  bool operator!=(const FileId& o) const { return !(*this == o); }
  static FileId of(const struct stat& st);
  static std::optional<FileId> now(const std::string& path);
};
/// While one is alive on a thread, every file readSmallFile reads there (and every directory
/// noted) is recorded with its identity, so that a result built from them can be reused until
/// one of them changes (the per-process policy memo, policy.cpp).
/// every path still has the identity recorded (a few stat calls)
bool unchanged(const std::vector<std::pair<std::string, FileId>>& files);
/// some file's mtime or ctime is less than seconds old
bool recentlyChanged(const std::vector<std::pair<std::string, FileId>>& files, int seconds);
class ReadRecorder {
 public:
  ReadRecorder();
  ~ReadRecorder();
  ReadRecorder(const ReadRecorder&) = delete;
  ReadRecorder& operator=(const ReadRecorder&) = delete;
  static void note(const std::string& path, const struct stat& st);
  std::vector<std::pair<std::string, FileId>> files;

 private:
  ReadRecorder* outer_;
};
/// write text to target through a private temporary file beside it and a rename (readers see
/// the old file or the new one); false when the directory is not writable
bool writeFileAtomic(const std::string& target, const std::string& text);
/// why bytes are not UTF-8 as Python words it ("invalid start byte", …), start set to the
/// offending sequence; null when they are
const char* utf8Error(const std::string& bytes, std::size_t& start);
/// JSON parse with a nesting limit; throws FormatError "<source>: not valid JSON: …"
json parseJson(const std::string& text, const std::string& source);
/// the same, keeping the members' order (a catalogue's versions show in hints in file order)
nlohmann::ordered_json parseOrderedJson(const std::string& text, const std::string& source);

// ---- paths (paths.cpp) -------------------------------------------------------------------
bool isReserved(const std::string& relpath);
/// os.path.realpath (non-strict: what does not exist is kept lexically)
std::string realpathOf(const std::string& p);
/// throws PathError naming the rule (paths.py check_relpath)
void checkRelpath(const std::string& relpath);
/// throws PathError on two paths equal after NFC + case folding
void checkCollisions(const std::vector<std::string>& paths);

class Resolver {
 public:
  explicit Resolver(std::string root);
  /// root/relpath after the rules and the parent-directory containment check (PathError)
  std::string operator()(const std::string& relpath);
  /// the final component is a symlink pointing outside the root
  bool escapes(const std::string& relpath) const;
  bool inside(const std::string& real) const;

 private:
  std::string root_, realRoot_;
  std::map<std::string, bool> dirs_;
};

// ---- digests (digest.cpp) ----------------------------------------------------------------
enum class Algorithm { Sha256, Blake3 };
Algorithm algorithmFromName(const std::string& name);  // throws FormatError
const char* algorithmName(Algorithm a);
std::string sha256Hex(const std::string& data);
std::string digestHex(const std::string& data, Algorithm a);
/// stream the file through the algorithm (1 MiB blocks, one buffer per thread)
std::string hashFile(const std::string& path, Algorithm a, std::uint64_t* size = nullptr);
unsigned defaultWorkers();

// ---- manifest (manifest.cpp) -------------------------------------------------------------
struct Manifest {
  std::string name, version, created, mediaType;
  Algorithm algorithm = Algorithm::Sha256;
  std::vector<FileEntry> files;  // as listed
  std::map<std::string, std::size_t> index;  // path → position in files
  json io;  // the "io" member (bundle-spec/io.md), null when absent; read by io.cpp
  json validity;  // the "validity" member (bundle-spec/validity.md), null when absent
  std::string ref() const { return name + "@" + version; }
};
/// the I/O signature of a manifest's io member (nullopt when null); FormatError naming the field
std::optional<IOSignature> readIOSignature(const json& io, const std::string& source);
Manifest parseManifest(const std::string& bytes, const std::string& source);
// the limits of src/hepbundle/limits.py (bundle-spec/README.md § Limits)
constexpr std::size_t kMaxManifestBytes = 32u << 20;  // hepbundle/limits.py, bundle-spec § Limits
constexpr std::size_t kMaxManifestFiles = 100000;
constexpr std::size_t kMaxSignatureBytes = 4u << 20;
constexpr std::size_t kMaxCatalogBytes = 32u << 20;
constexpr std::size_t kMaxJsonBytes = 64u << 20;
constexpr std::size_t kMaxYamlBytes = 4u << 20;
constexpr int kMaxJsonDepth = 64;
/// "<source>: 1,234 bytes, over the limit of 1,000" (FormatError, with the limits hint)
std::string thousands(std::uint64_t n);
[[noreturn]] void tooBig(const std::string& source, std::uint64_t size, std::uint64_t limit);

/// what the library's own code reads of an opened bundle (bundle.cpp)
struct BundleAccess {
  static const Manifest& manifest(const Bundle& b);
};

// ---- validity scopes and the job's context (validity.cpp; bundle-spec/validity.md) ----------
/// the context a job states: key=value pairs in their order, the run and time parsed
struct Context {
  std::vector<std::pair<std::string, std::string>> values;
  std::optional<std::string> run;   // decimal digits (any length, as Python's int)
  std::optional<std::int64_t> time;  // seconds since the epoch
  bool empty() const { return values.empty(); }
  const std::string* find(const std::string& key) const;
  std::string str() const;  // k=v,k=v
};
/// "run=456789,release=CMSSW_15_0_3" (a piece without '=' continues the value before it);
/// UsageError naming source and key (validity.parse_context)
Context parseContext(const std::string& text, const std::string& source);
/// Options::context, else HEPBUNDLE_CONTEXT (resolver.job_context)
Context jobContext(const Options& options);
/// YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (text null: not a string, shown is its repr) → epoch seconds
std::int64_t parseValidityTime(const std::string* text, const std::string& shown, const std::string& where);
struct RunRange {
  std::string first;
  std::optional<std::string> last;
};
struct TimeRange {
  std::string since;
  std::optional<std::string> until;
  std::int64_t start = 0;
  std::optional<std::int64_t> end;
};
struct Requirement {
  std::string text, name;
  std::vector<std::pair<std::string, std::string>> clauses;  // (op, version)
  bool admits(const std::string& version) const;
};
/// a parsed validity section (validity.Scope): every list "any of", the members "all of"
struct Scope {
  std::vector<RunRange> runs;
  std::vector<TimeRange> times;
  std::vector<std::pair<std::string, std::vector<std::string>>> globs;  // section → patterns
  std::vector<Requirement> runtimes;
  std::vector<std::pair<std::string, std::vector<std::string>>> keys;  // free-form key → patterns
  /// (context key, matched) for every key of ctx this scope restricts
  std::vector<std::pair<std::string, bool>> checks(const Context& ctx) const;
  std::vector<std::string> excludedBy(const Context& ctx) const;
  bool covers(const Context& ctx) const;
  /// "runs 450000–456999; releases CMSSW_15_0_*", limited to the dimensions of only's keys
  std::string describe(const std::vector<std::string>* only = nullptr) const;
};
/// resolver.check_scope: ValidityError when the opened bundle's scope excludes the job's context
/// (covering: chosen as @valid, so its scope must also cover it); nothing without a context
void checkScope(const Bundle& bundle, const Options& options, bool covering);
/// Scope.from_json: null → no restriction; FormatError "<where>.<field>: …" otherwise
Scope parseScope(const json& obj, const std::string& where);
Scope parseScope(const nlohmann::ordered_json& obj, const std::string& where);
/// validity.schema.json's rules, checked when a manifest is opened (FormatError naming where)
void checkValiditySchema(const json& v, const std::string& where);

// ---- node verification cache (cache.cpp) -------------------------------------------------
class VerificationCache {
 public:
  explicit VerificationCache(std::string directory);
  bool isVerified(const std::string& manifestDigest, const std::string& relpath,
                  const std::string& digest, const std::string& path, const struct stat& st);
  struct Item {
    std::string relpath, digest, path;
    struct stat st;
  };
  void record(const std::string& manifestDigest, const std::vector<Item>& items);
  const std::string& directory() const { return dir_; }

 private:
  json& entries(const std::string& manifestDigest);
  std::string file(const std::string& manifestDigest) const;
  std::string dir_;
  std::mutex lock_;
  std::map<std::string, json> loaded_;
};
/// the user's cache (HEPBUNDLE_CACHE_DIR, XDG_CACHE_HOME/hepbundle, ~/.cache/hepbundle), or null
std::shared_ptr<VerificationCache> defaultCache();
/// cvmfs2 FUSE mount points in a /proc/<pid>/mountinfo text, longest first
std::vector<std::string> parseMountinfo(const std::string& text);
std::optional<std::string> cvmfsMountOf(const std::string& path);
json cvmfsKey(const std::string& path);

// ---- integrity (integrity.cpp) -----------------------------------------------------------
IntegrityReport checkTree(const std::string& root, const Manifest& m,
                          const std::vector<std::string>* files, unsigned workers,
                          VerificationCache* cache, const std::string& manifestDigest);

// ---- signatures and policy (signature.cpp, policy.cpp) -----------------------------------
class TrustPolicy;
using PolicyPtr = std::shared_ptr<const TrustPolicy>;
/// a trust policy file (YAML); SpecError naming file, line and field
PolicyPtr loadPolicy(const std::string& path);
/// the policy held by member of a YAML/JSON document (a trust root's "policy"); relative paths
/// are taken from base
PolicyPtr policyFromDocument(const std::string& text, const std::string& member, const std::string& source,
                             const std::string& base);
/// verify every signature file of the bundle at root against the policy; the signers accepted
std::vector<Signer> verifySignatures(const std::string& root, const std::string& name,
                                     const std::string& what, Algorithm alg,
                                     const std::map<std::string, std::string>& expected,
                                     const TrustPolicy& policy);
/// signature files at the top of root by role, "primary" first
std::vector<std::pair<std::string, std::string>> signatureFiles(const std::string& root);

// ---- which policy judges a bundle (trust.cpp) ----------------------------------------------
/// the node cache directory (HEPBUNDLE_CACHE_DIR, …): also holds the accepted trust roots
/// (known-repositories.json) and the catalogue state (catalog-state.json), even with
/// HEPBUNDLE_NO_CACHE
std::string cacheDirectory();
/// HEPBUNDLE_POLICY's policy; null when unset; set but empty or unreadable: PolicyError
PolicyPtr policyFromEnv();
/// the default-deny refusal: nothing says whose signatures to accept for what
PolicyError noPolicyError(const std::string& what);
struct TrustRoot {
  std::string repository, root, digest;
  PolicyPtr policy;
  std::string authenticatedBy;  ///< pinned, cvmfs, accepted
};
/// the repository's trust root if this node accepts it; nullopt when it has none; PolicyError
/// when it has one that is not pinned, not on CVMFS and not accepted here (or changed)
std::optional<TrustRoot> trustRootFor(const std::string& repoRoot);
bool hasTrustRoot(const std::string& repoRoot);
/// the repository whose bundles/<ns>/<name>/<version> is dir (absolute), if any
std::optional<std::string> repositoryOfDir(const std::string& dir, const std::string& name, const std::string& version);

// ---- signed catalogue statements and approvals (statements.cpp) ---------------------------
/// Python's canonical_json: sorted keys, 2-space indent, UTF-8, trailing newline
std::string canonicalJson(const json& value);
/// "sha256:<hex>" of a statement's canonical JSON: what the next statement's previous is
std::string statementDigest(const json& body);
/// what resolve chose from a per-name catalogue
struct CatalogEntry {
  std::string name, version, digest;  ///< digest: the catalogue's manifestSha256
  bool yanked = false;
  std::optional<std::string> selector;  ///< the version or alias asked for (none: latest)
  bool isAlias = false;                 ///< the selector is one of the catalogue's aliases
  const ojson* statements = nullptr;    ///< the catalogue's statements array, oldest first
  std::string catalogDigest;            ///< SHA-256 of the catalogue file's bytes (memo key)
};
/// the serial the last change of a name produced, and where it is kept
struct SerialInfo {
  std::string repository;         ///< repository.json's name
  std::int64_t serial = 0;
  std::string file;               ///< catalog/repository.json or bundles/<ns>/_catalog/namespace.json
  std::optional<std::string> ns;  ///< format 2: the namespace
};
/// statements.check_catalog (when the policy signs the name's catalogue): the chain, the
/// signatures it relies on, the replayed state against the entry, expiry, serial, node state
/// (the chain parsed and each statement's signature verified once per process for the same
/// catalogue bytes and policy object; the rest is checked at every call)
void checkCatalogStatements(const CatalogEntry& entry, const PolicyPtr& policy, const SerialInfo& serial, const Options& o);
/// approvals.check_approvals(resolving=True) for an alias the policy guards with approvals
void checkApprovals(const std::string& recordsDir, const CatalogEntry& entry, const TrustPolicy& policy, const Options& o);

/// open (bundle.cpp) judged by chosen when given (Options::policy as loaded, or the repository's
/// policy resolve chose), else by HEPBUNDLE_POLICY or the trust root of its repository
Bundle openWith(const std::string& path, const Options& options, const PolicyPtr& chosen);

// ---- logging ----------------------------------------------------------------------------
void log(const Options& o, LogLevel level, const std::string& msg);

}  // namespace hepbundle::detail
