// Streaming file digests: SHA-256 (OpenSSL) or BLAKE3 (the reference C implementation, built
// from Debian's librust-blake3-dev sources), 1 MiB blocks through one buffer per thread, so
// memory stays workers × 1 MiB whatever the file size.
#include <fcntl.h>
#include <openssl/evp.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <system_error>
#include <thread>

#include "blake3.h"
#include "internal.hpp"

namespace hepbundle::detail {

namespace {
constexpr std::size_t kBlock = 1u << 20;

unsigned char* threadBuffer() {
  thread_local std::unique_ptr<unsigned char[]> buf(new unsigned char[kBlock]);
  return buf.get();
}

const EVP_MD* sha256() {
  static const EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};
}  // namespace

Algorithm algorithmFromName(const std::string& name) {
  if (name == "sha256") return Algorithm::Sha256;
  if (name == "blake3") return Algorithm::Blake3;
  throw FormatError("unknown hashing algorithm " + pyrepr(name));
}

const char* algorithmName(Algorithm a) { return a == Algorithm::Sha256 ? "sha256" : "blake3"; }

std::string sha256Hex(const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), out, &n, sha256(), nullptr);
  return hexOf(out, n);
}

std::string digestHex(const std::string& data, Algorithm a) {
  if (a == Algorithm::Sha256) return sha256Hex(data);
  blake3_hasher h;
  blake3_hasher_init(&h);
  blake3_hasher_update(&h, data.data(), data.size());
  unsigned char out[BLAKE3_OUT_LEN];
  blake3_hasher_finalize(&h, out, BLAKE3_OUT_LEN);
  return hexOf(out, BLAKE3_OUT_LEN);
}

std::string hashFile(const std::string& path, Algorithm a, std::uint64_t* size) {
  // O_NONBLOCK so that a FIFO put in place of a file never blocks the open; callers lstat first
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)};
  if (f.fd < 0) throw std::system_error(errno, std::generic_category(), path);
  struct stat st {};
  if (fstat(f.fd, &st) != 0) throw std::system_error(errno, std::generic_category(), path);
  if (!S_ISREG(st.st_mode)) throw std::system_error(EINVAL, std::generic_category(), path + ": not a regular file");
  posix_fadvise(f.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  unsigned char* buf = threadBuffer();
  std::uint64_t total = 0;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(nullptr, EVP_MD_CTX_free);
  blake3_hasher b3;
  if (a == Algorithm::Sha256) {
    ctx.reset(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestInit_ex(ctx.get(), sha256(), nullptr) != 1) throw HepbundleError("OpenSSL SHA-256 unavailable");
  } else {
    blake3_hasher_init(&b3);
  }
  while (true) {
    const ssize_t n = ::read(f.fd, buf, kBlock);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), path);
    }
    if (n == 0) break;
    if (a == Algorithm::Sha256) EVP_DigestUpdate(ctx.get(), buf, static_cast<std::size_t>(n));
    else blake3_hasher_update(&b3, buf, static_cast<std::size_t>(n));
    total += static_cast<std::uint64_t>(n);
  }
  if (size) *size = total;
  if (a == Algorithm::Sha256) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx.get(), out, &len);
    return hexOf(out, len);
  }
  unsigned char out[BLAKE3_OUT_LEN];
  blake3_hasher_finalize(&b3, out, BLAKE3_OUT_LEN);
  return hexOf(out, BLAKE3_OUT_LEN);
}

unsigned defaultWorkers() {
  const std::string env = envOr("HEPBUNDLE_HASH_THREADS");
  if (!env.empty() && env.find_first_not_of("0123456789") == std::string::npos && env.size() < 6) {
    const int n = std::stoi(env);
    if (n > 0) return static_cast<unsigned>(n);
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace hepbundle::detail
