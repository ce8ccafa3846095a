// Opened bundles (src/hepbundle/bundle.py Bundle, load.py open): the manifest read once, the
// signatures checked at open against the policy, each payload file verified on first request.
#include <atomic>
#include <cerrno>
#include <cstring>

#include "sig.hpp"

namespace hepbundle {

struct Bundle::Impl {
  std::string root;
  detail::Manifest manifest;
  std::string digest;
  std::string algorithmDigest;  // hepbundle.json's digest in the files' algorithm (signed)
  bool verifyFiles = true;
  unsigned threads = 0;
  std::shared_ptr<detail::VerificationCache> cache;
  std::vector<Signer> signers;
  bool checked = false;
  std::unique_ptr<std::mutex[]> locks;
  std::unique_ptr<std::atomic<bool>[]> verified;
};

namespace detail {

namespace {

// bundle.read_manifest_data: the bytes of hepbundle.json (size-capped, regular file only)
std::string readManifestData(const std::string& root) {
  struct stat st {};
  if (stat(root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    const bool exists = lstat(root.c_str(), &st) == 0;
    throw NotABundleError(root + " is not a bundle directory (" + (exists ? "it is not a directory" : "it does not exist") + ")");
  }
  const std::string mpath = root + "/hepbundle.json";
  try {
    return readSmallFile(mpath, kMaxManifestBytes);
  } catch (const ReadError& e) {
    if (e.err == ENOENT) throw NotABundleError(root + " is not a bundle: hepbundle.json is missing");
    if (e.tooBig)
      throw FormatError(mpath + " is " + thousands(e.size) + " bytes, over the limit of " + thousands(kMaxManifestBytes),
                        "see docs/reference/errors.md § Limits");
    if (e.notRegular) throw FormatError(mpath + " is " + describeMode(e.mode) + ", not a regular file", "replace it with the real file");
    throw IntegrityError("cannot read " + mpath + ": " + std::strerror(e.err));
  }
}

std::shared_ptr<Bundle::Impl> load(const std::string& root, const std::string& data, bool verifyFiles) {
  auto impl = std::make_shared<Bundle::Impl>();
  impl->root = root;
  impl->manifest = parseManifest(data, root + "/hepbundle.json");
  impl->digest = sha256Hex(data);
  impl->algorithmDigest = digestHex(data, impl->manifest.algorithm);
  impl->verifyFiles = verifyFiles;
  const std::size_t n = impl->manifest.files.size();
  impl->locks.reset(new std::mutex[n]);
  impl->verified.reset(new std::atomic<bool>[n]);
  for (std::size_t i = 0; i < n; ++i) impl->verified[i] = false;
  return impl;
}

// load._policy_for: the policy given, else HEPBUNDLE_POLICY, else the trust root of the
// repository the bundle name@version is published in (directory where); else refused
PolicyPtr policyFor(const std::string& where, const std::string& name, const std::string& version, const PolicyPtr& chosen) {
  if (chosen) return chosen;
  if (PolicyPtr p = policyFromEnv()) return p;
  const std::string ref = name + "@" + version;
  const auto repo = repositoryOfDir(where, name, version);
  std::optional<TrustRoot> found = repo ? trustRootFor(*repo) : std::nullopt;
  if (!found) throw noPolicyError(ref + (repo ? " (repository " + *repo + " has no trust root)" : ""));
  return found->policy;
}

}  // namespace

Bundle openWith(const std::string& path, const Options& options, const PolicyPtr& chosen) {
  if (path.find('\0') != std::string::npos) throw PathError("path " + pyrepr(path) + " contains a NUL or control character");
  const std::string root = absolutePath(path);
  const std::string data = readManifestData(root);
  if (options.verify == Verify::None || options.verify == Verify::Integrity) {
    auto impl = load(root, data, options.verify != Verify::None);
    impl->threads = options.threads;
    if (options.useCache) impl->cache = defaultCache();
    const std::string ref = impl->manifest.ref();
    if (options.verify == Verify::None) log(options, LogLevel::Warning, "opening " + ref + " WITHOUT verification (verify='none')");
    else
      log(options, LogLevel::Warning,
          "opening " + ref + " with INTEGRITY CHECKS ONLY (verify='integrity'): signatures not checked, the bundle is not verified");
    return Bundle(impl);
  }
  // signatures first, over the manifest's bytes before its entries are parsed (load._open_verified)
  auto pre = verifyManifestSignature(
      root, data, [&](const std::string& name, const std::string& version) { return policyFor(root, name, version, chosen); });
  auto impl = load(root, data, true);
  impl->threads = options.threads;
  if (options.useCache) impl->cache = defaultCache();
  const std::string ref = impl->manifest.ref();
  std::map<std::string, std::string> expected;
  for (const auto& f : impl->manifest.files) expected[f.path] = f.digest;
  expected["hepbundle.json"] = impl->algorithmDigest;
  if (pre) {
    impl->signers = finishPrechecked(*pre, ref, impl->manifest.algorithm, expected);
  } else {  // the signatures name no bundle (plain model_signing), or differ: judged after parsing
    const PolicyPtr p = policyFor(root, impl->manifest.name, impl->manifest.version, chosen);
    impl->signers = verifySignatures(impl->root, impl->manifest.name, ref, impl->manifest.algorithm, expected, *p);
  }
  impl->checked = true;
  Bundle b(impl);
  if (options.verify == Verify::Full) b.verify().raiseForProblems(ref);
  return b;
}

}  // namespace detail

Bundle open(const std::string& path, const Options& options) {
  // a policy named by the caller is read first, as Python's caller loads it (TrustPolicy.load)
  return detail::openWith(path, options, options.policy.empty() ? nullptr : detail::loadPolicy(options.policy));
}

std::string Bundle::root() const { return impl_->root; }
std::string Bundle::name() const { return impl_->manifest.name; }
std::string Bundle::version() const { return impl_->manifest.version; }
std::string Bundle::ref() const { return impl_->manifest.ref(); }
std::string Bundle::manifestDigest() const { return impl_->digest; }
std::string Bundle::algorithm() const { return detail::algorithmName(impl_->manifest.algorithm); }
std::vector<FileEntry> Bundle::files() const { return impl_->manifest.files; }
const std::vector<Signer>& Bundle::signers() const { return impl_->signers; }
bool Bundle::signaturesChecked() const { return impl_->checked; }
std::optional<IOSignature> Bundle::io() const {
  return detail::readIOSignature(impl_->manifest.io, impl_->manifest.ref());
}

std::string Bundle::path(const std::string& file) const {
  using namespace detail;
  const auto& m = impl_->manifest;
  auto it = m.index.find(file);
  if (it == m.index.end()) {
    std::vector<std::string> paths;
    for (const auto& f : m.files) paths.push_back(f.path);
    auto close = closeMatches(file, paths, 1, 0.6);
    throw NotInBundleError(ref() + " has no file " + pyrepr(file), close.empty() ? "" : "did you mean " + pyrepr(close[0]) + "?");
  }
  const std::size_t i = it->second;
  if (impl_->verifyFiles && !impl_->verified[i].load(std::memory_order_acquire)) {
    std::lock_guard<std::mutex> g(impl_->locks[i]);
    if (!impl_->verified[i].load(std::memory_order_relaxed)) {
      const std::vector<std::string> one{file};
      IntegrityReport r = checkTree(impl_->root, m, &one, 1, impl_->cache.get(), impl_->digest);
      if (!r.ok()) throw IntegrityError(ref() + ": " + r.problems[0].str());
      impl_->verified[i].store(true, std::memory_order_release);
    }
  }
  return impl_->root + "/" + file;
}

IntegrityReport Bundle::verify() const {
  IntegrityReport r = detail::checkTree(impl_->root, impl_->manifest, nullptr, impl_->threads, impl_->cache.get(), impl_->digest);
  if (r.ok())
    for (std::size_t i = 0; i < impl_->manifest.files.size(); ++i) impl_->verified[i].store(true);
  return r;
}

IntegrityReport Bundle::verify(const std::vector<std::string>& files) const {
  IntegrityReport r = detail::checkTree(impl_->root, impl_->manifest, &files, impl_->threads, impl_->cache.get(), impl_->digest);
  if (r.ok())
    for (const auto& f : files) impl_->verified[impl_->manifest.index.at(f)].store(true);
  return r;
}

const detail::Manifest& detail::BundleAccess::manifest(const Bundle& b) { return b.impl_->manifest; }

const char* version() { return HEPBUNDLE_VERSION; }

}  // namespace hepbundle
