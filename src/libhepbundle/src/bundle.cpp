// Opened bundles (src/hepbundle/bundle.py Bundle, load.py open): the manifest read once, the
// signatures checked at open against the policy, each payload file verified on first request.
#include <atomic>
#include <cerrno>
#include <cstring>

#include "internal.hpp"

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

std::shared_ptr<Bundle::Impl> load(const std::string& path, bool verifyFiles) {
  if (path.find('\0') != std::string::npos) throw PathError("path " + pyrepr(path) + " contains a NUL or control character");
  auto impl = std::make_shared<Bundle::Impl>();
  impl->root = absolutePath(path);
  struct stat st {};
  if (stat(impl->root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    const bool exists = lstat(impl->root.c_str(), &st) == 0;
    throw NotABundleError(impl->root + " is not a bundle directory (" + (exists ? "it is not a directory" : "it does not exist") + ")");
  }
  const std::string mpath = impl->root + "/hepbundle.json";
  std::string data;
  try {
    data = readSmallFile(mpath, kMaxManifestBytes);
  } catch (const ReadError& e) {
    if (e.err == ENOENT) throw NotABundleError(impl->root + " is not a bundle: hepbundle.json is missing");
    if (e.tooBig)
      throw FormatError(mpath + " is " + thousands(e.size) + " bytes, over the limit of " + thousands(kMaxManifestBytes),
                        "see docs/reference/errors.md § Limits");
    if (e.notRegular) throw FormatError(mpath + " is " + describeMode(e.mode) + ", not a regular file", "replace it with the real file");
    throw IntegrityError("cannot read " + mpath + ": " + std::strerror(e.err));
  }
  impl->manifest = parseManifest(data, mpath);
  impl->digest = sha256Hex(data);
  impl->algorithmDigest = digestHex(data, impl->manifest.algorithm);
  impl->verifyFiles = verifyFiles;
  const std::size_t n = impl->manifest.files.size();
  impl->locks.reset(new std::mutex[n]);
  impl->verified.reset(new std::atomic<bool>[n]);
  for (std::size_t i = 0; i < n; ++i) impl->verified[i] = false;
  return impl;
}

std::string policyPath(const Options& o) { return o.policy.empty() ? envOr("HEPBUNDLE_POLICY") : o.policy; }

}  // namespace

}  // namespace detail

Bundle open(const std::string& path, const Options& options) {
  using namespace detail;
  auto impl = load(path, options.verify != Verify::None);
  impl->threads = options.threads;
  if (options.useCache) impl->cache = defaultCache();
  const std::string ref = impl->manifest.ref();
  if (options.verify == Verify::None) {
    log(options, LogLevel::Warning, "opening " + ref + " WITHOUT verification (verify='none')");
    return Bundle(impl);
  }
  const std::string policy = policyPath(options);
  if (policy.empty()) {
    if (options.requirePolicy)
      throw SignatureError(ref + ": no trust policy configured: signatures cannot be checked", "pass a policy or set HEPBUNDLE_POLICY");
    if (!signatureFiles(impl->root).empty()) log(options, LogLevel::Warning, "no trust policy configured: signatures of " + ref + " not checked");
    else log(options, LogLevel::Info, ref + " is unsigned and no trust policy is configured: integrity only");
  } else {
    auto p = loadPolicy(policy);
    std::map<std::string, std::string> expected;
    for (const auto& f : impl->manifest.files) expected[f.path] = f.digest;
    expected["hepbundle.json"] = impl->algorithmDigest;
    impl->signers = verifySignatures(impl->root, impl->manifest.name, ref, impl->manifest.algorithm, expected, *p);
    impl->checked = true;
  }
  Bundle b(impl);
  if (options.verify == Verify::Full) b.verify().raiseForProblems(ref);
  return b;
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

const char* version() { return HEPBUNDLE_VERSION; }

}  // namespace hepbundle
