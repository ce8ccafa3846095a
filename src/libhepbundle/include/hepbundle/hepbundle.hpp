// hepbundle native library: open, verify and resolve signed model bundles from C++ jobs
// (Athena, CMSSW) without Python. Mirrors the Python API (hepbundle.open / resolve /
// Bundle.path / Bundle.verify) and the normative format in bundle-spec/.
//
//   hepbundle::Options opt;  // policy: HEPBUNDLE_POLICY, else the repository's trust root
//   auto b = hepbundle::resolve("atlas/tauid@prod", opt);   // over HEPBUNDLE_PATH
//   std::string onnx = b.path("model/model.onnx");          // verified on first request
//
// Every function throws a hepbundle::HepbundleError subclass (errors.hpp) on failure.
// A Bundle is a cheap shared handle: copy it freely and use it from many threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hepbundle/errors.hpp"
#include "hepbundle/io.hpp"

namespace hepbundle {

/// How much open/resolve check. Lazy and Full judge the signatures under a trust policy and
/// refuse without one; Integrity (file digests only) and None must be asked for by name, are
/// logged, and a bundle opened so is never reported as verified (signaturesChecked() false).
enum class Verify { Lazy, Full, Integrity, None };

/// Severity of a message the library would log (Python's "hepbundle" logger).
enum class LogLevel { Info, Warning };

struct Options {
  /// Lazy: signatures at open, each file's digest on first request; Full: every file at open
  Verify verify = Verify::Lazy;
  /// trust policy YAML (bundle-spec/v1/policy.schema.json). Empty: HEPBUNDLE_POLICY if set (set
  /// but empty or unreadable is a PolicyError), else the trust root (catalog/trust.json) of the
  /// repository the bundle is published in, once this node accepts it (HEPBUNDLE_TRUST_ROOT pin,
  /// a cvmfs2 mount, or `hepbundle repo trust`); without any, Lazy and Full refuse (PolicyError)
  std::string policy;
  /// no effect, kept so older code compiles: a policy is always required (trust by default)
  bool requirePolicy = true;
  /// accept a yanked version (logged as a warning)
  bool allowYanked = false;
  /// the job's context, "run=456789,release=CMSSW_15_0_3" (bundle-spec/validity.md): resolve
  /// refuses a version whose validity scope excludes it (ValidityError), and ns/name@valid picks
  /// the newest release whose scope covers it. Unset: HEPBUNDLE_CONTEXT, if set; set to ""
  /// (or only commas and spaces): no context, whatever HEPBUNDLE_CONTEXT says (Python's context="")
  std::optional<std::string> context;
  /// repositories to search; empty: HEPBUNDLE_PATH, else HEPBUNDLE_REPO, else ./hepbundle-repo
  std::vector<std::string> repos;
  /// hashing threads for verify(); 0: HEPBUNDLE_HASH_THREADS or the CPUs this process may use
  unsigned threads = 0;
  /// use the node verification cache shared with Python (HEPBUNDLE_NO_CACHE=1 turns it off)
  bool useCache = true;
  /// receives what Python logs; default: warnings to stderr as "hepbundle: …"
  std::function<void(LogLevel, const std::string&)> log;
};

/// Who signed, as the policy accepted it.
struct Signer {
  std::string kind;      ///< "key" or "x509"
  std::string identity;  ///< "sha256:<hex>" of the key, or the subject DN
  std::string file;      ///< the signature file ("hepbundle.sig", "hepbundle.author.sig")
  std::string role;      ///< "primary" or the co-signature role
  std::string signedAt;  ///< YYYY-MM-DDTHH:MM:SSZ, as the signature claims
  std::string issuer;    ///< X.509: the issuer DN
  /// the signing time an RFC 3161 timestamp proved (YYYY-MM-DDTHH:MM:SSZ), empty without one
  std::string timestampedAt;
};

/// One payload file of the manifest.
struct FileEntry {
  std::string path;
  std::uint64_t size = 0;
  std::string digest;  ///< lowercase hex, of the manifest's hashing algorithm
  std::string role;
};

/// One integrity problem ("missing", "extra", "modified", "path").
struct Problem {
  std::string kind;
  std::string path;
  std::string detail;
  std::string str() const;
};

struct IntegrityReport {
  std::size_t checked = 0;
  std::uint64_t bytes = 0;   ///< bytes hashed
  std::size_t cached = 0;    ///< files vouched for by the node cache
  std::vector<Problem> problems;
  bool ok() const { return problems.empty(); }
  /// throws IntegrityError "<what> failed integrity verification: …" if there are problems
  void raiseForProblems(const std::string& what) const;
};

namespace detail {
struct BundleAccess;
}

class Bundle {
 public:
  /// absolute path of the bundle directory
  std::string root() const;
  /// absolute path of a payload file, returned only once its digest matched (once per process)
  std::string path(const std::string& file) const;
  /// check every file (in parallel) and scan for extra files; does not throw on problems
  IntegrityReport verify() const;
  /// check the named files only
  IntegrityReport verify(const std::vector<std::string>& files) const;
  std::string name() const;
  std::string version() const;
  /// namespace/name@version
  std::string ref() const;
  /// hex SHA-256 of hepbundle.json as read at open
  std::string manifestDigest() const;
  /// the manifest's hashing algorithm ("sha256" or "blake3")
  std::string algorithm() const;
  std::vector<FileEntry> files() const;
  /// the signers that satisfied the policy; empty when signatures were not checked
  const std::vector<Signer>& signers() const;
  /// whether the signatures were checked under a trust policy at open (false only for
  /// Verify::Integrity and Verify::None: such a bundle is not verified)
  bool signaturesChecked() const;
  /// the model's I/O signature (io.hpp, bundle-spec/io.md); nullopt when the manifest has none,
  /// FormatError when its io member is malformed
  std::optional<IOSignature> io() const;

  struct Impl;
  explicit Bundle(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

 private:
  friend struct detail::BundleAccess;
  std::shared_ptr<Impl> impl_;
};

/// Open the bundle directory at path (signatures checked against the policy at open, over the
/// manifest's bytes before they are parsed; without a policy PolicyError, see Options::policy).
Bundle open(const std::string& path, const Options& options = {});

/// Open the bundle a reference names ("ns/name@1.2.0", "ns/name@prod", "ns/name", "ns/name@valid"
/// with a context, or a path), searching the repositories in order, with the catalogue-digest
/// check, the yank refusal and the validity scope checked against Options::context; when
/// the policy signs the name's catalogue, the signed statement behind the version or alias is
/// checked (hijack, un-yank, hidden release: PolicyError; rollback against the node cache,
/// serial decreased, expired: CatalogRollbackError), and an alias the policy guards with
/// approvals needs a valid signed approval per role (bundle-spec/repository.md § 3a).
Bundle resolve(const std::string& ref, const Options& options = {});

/// The library's version string.
const char* version();

}  // namespace hepbundle
