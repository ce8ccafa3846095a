// hepbundle-bench: in-process timings for tools/bench/native.py (not installed).
//   hepbundle-bench open REF FILE N     first resolve+path in this process, then the best of N more
//   hepbundle-bench verify PATH THREADS full verify (integrity only); seconds, bytes, peak RSS
//   hepbundle-bench sha256 THREADS F... the baseline: raw OpenSSL SHA-256 of the files, THREADS threads
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "hepbundle/hepbundle.hpp"

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
long peakRssKiB() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: hepbundle-bench open REF FILE N | verify PATH THREADS | sha256 THREADS FILE...\n");
    return 2;
  }
  const std::string mode = argv[1];
  try {
    if (mode == "open" && argc == 5) {
      hepbundle::Options o;
      const double t0 = now();
      hepbundle::Bundle b = hepbundle::resolve(argv[2], o);
      const std::string p = b.path(argv[3]);
      const double first = now() - t0;
      double best = 1e9;
      for (int i = 0; i < std::atoi(argv[4]); ++i) {
        const double t = now();
        hepbundle::Bundle again = hepbundle::resolve(argv[2], o);
        again.path(argv[3]);
        best = std::min(best, now() - t);
      }
      std::printf("{\"first_s\": %.6f, \"repeat_s\": %.6f, \"signers\": %zu}\n", first, best, b.signers().size());
      return 0;
    }
    if (mode == "verify" && argc == 4) {
      hepbundle::Options o;
      o.verify = hepbundle::Verify::Integrity;  // the hashing is measured, not the signatures
      o.threads = static_cast<unsigned>(std::atoi(argv[3]));
      o.useCache = false;
      hepbundle::Bundle b = hepbundle::open(argv[2], o);
      const double t0 = now();
      auto r = b.verify();
      const double dt = now() - t0;
      r.raiseForProblems(b.ref());
      std::printf("{\"seconds\": %.6f, \"bytes\": %llu, \"peak_rss\": %ld}\n", dt, static_cast<unsigned long long>(r.bytes),
                  peakRssKiB() * 1024);
      return 0;
    }
    if (mode == "sha256") {
      const int threads = std::atoi(argv[2]);
      std::vector<std::string> files(argv + 3, argv + argc);
      std::vector<std::string> digests(files.size());
      std::atomic<std::size_t> next{0};
      std::atomic<unsigned long long> total{0};
      auto work = [&] {
        std::unique_ptr<unsigned char[]> buf(new unsigned char[1 << 20]);
        for (std::size_t i; (i = next++) < files.size();) {
          const int fd = ::open(files[i].c_str(), O_RDONLY);
          if (fd < 0) continue;
          EVP_MD_CTX* ctx = EVP_MD_CTX_new();
          EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
          for (ssize_t n; (n = ::read(fd, buf.get(), 1 << 20)) > 0;) {
            EVP_DigestUpdate(ctx, buf.get(), static_cast<std::size_t>(n));
            total += static_cast<unsigned long long>(n);
          }
          unsigned char md[32];
          unsigned len = 0;
          EVP_DigestFinal_ex(ctx, md, &len);
          EVP_MD_CTX_free(ctx);
          ::close(fd);
          char hex[65];
          for (int k = 0; k < 32; ++k) std::snprintf(hex + 2 * k, 3, "%02x", md[k]);
          digests[i] = hex;
        }
      };
      const double t0 = now();
      std::vector<std::thread> pool;
      for (int t = 0; t < threads; ++t) pool.emplace_back(work);
      for (auto& t : pool) t.join();
      std::printf("{\"seconds\": %.6f, \"bytes\": %llu, \"digests\": [", now() - t0, total.load());
      for (std::size_t i = 0; i < digests.size(); ++i) std::printf("%s\"%s\"", i ? ", " : "", digests[i].c_str());
      std::printf("]}\n");
      return 0;
    }
  } catch (const hepbundle::HepbundleError& e) {
    std::fprintf(stderr, "hepbundle-bench: %s: %s\n", e.className(), e.what());
    return e.exitCode();
  }
  std::fprintf(stderr, "hepbundle-bench: bad arguments\n");
  return 2;
}
