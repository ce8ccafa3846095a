// The plain C API (hepbundle.h) over the C++ one; the last error is kept per thread.
#include <cstdlib>
#include <cstring>

#include "hepbundle/hepbundle.h"
#include "internal.hpp"

struct hepbundle_bundle {
  hepbundle::Bundle bundle;
  std::string ref, digest;
};

namespace {

struct LastError {
  std::string message, cls;
  int code = 0;
};
thread_local LastError lastError;

hepbundle::Options options(const char* policy, int flags) {
  hepbundle::Options o;
  if (policy) o.policy = policy;
  if (flags & HEPBUNDLE_VERIFY_FULL) o.verify = hepbundle::Verify::Full;
  if (flags & HEPBUNDLE_VERIFY_INTEGRITY) o.verify = hepbundle::Verify::Integrity;
  if (flags & HEPBUNDLE_VERIFY_NONE) o.verify = hepbundle::Verify::None;
  o.allowYanked = (flags & HEPBUNDLE_ALLOW_YANKED) != 0;
  o.useCache = (flags & HEPBUNDLE_NO_CACHE) == 0;
  return o;
}

template <class F>
auto guarded(F&& f) -> decltype(f()) {
  lastError = {};
  try {
    return f();
  } catch (const hepbundle::HepbundleError& e) {
    lastError = {e.what(), e.className(), e.exitCode()};
  } catch (const std::bad_alloc&) {
    lastError = {"out of memory", "MemoryError", 2};
  } catch (const std::exception& e) {
    lastError = {e.what(), "HepbundleError", 2};
  }
  return decltype(f())();
}

char* dup(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p) std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

hepbundle_bundle* wrap(const hepbundle::Bundle& b) { return new hepbundle_bundle{b, b.ref(), b.manifestDigest()}; }

}  // namespace

extern "C" {

hepbundle_bundle* hepbundle_resolve(const char* ref, const char* policy, int flags) {
  return guarded([&]() -> hepbundle_bundle* {
    if (!ref) throw hepbundle::NotFoundError("empty bundle reference");
    return wrap(hepbundle::resolve(ref, options(policy, flags)));
  });
}

hepbundle_bundle* hepbundle_open(const char* path, const char* policy, int flags) {
  return guarded([&]() -> hepbundle_bundle* {
    if (!path) throw hepbundle::NotABundleError("no bundle path given");
    return wrap(hepbundle::open(path, options(policy, flags)));
  });
}

char* hepbundle_path(hepbundle_bundle* b, const char* file) {
  return guarded([&]() -> char* {
    if (!b || !file) throw hepbundle::HepbundleError("hepbundle_path: null argument");
    return dup(b->bundle.path(file));
  });
}

int hepbundle_verify(hepbundle_bundle* b) {
  return guarded([&]() -> int {
           if (!b) throw hepbundle::HepbundleError("hepbundle_verify: null argument");
           b->bundle.verify().raiseForProblems(b->ref);
           return 1;
         }) == 1
             ? 0
             : -1;
}

const char* hepbundle_ref(const hepbundle_bundle* b) { return b ? b->ref.c_str() : ""; }
const char* hepbundle_manifest_digest(const hepbundle_bundle* b) { return b ? b->digest.c_str() : ""; }
int hepbundle_verified(const hepbundle_bundle* b) { return b && b->bundle.signaturesChecked() ? 1 : 0; }
void hepbundle_close(hepbundle_bundle* b) { delete b; }
void hepbundle_free(void* p) { std::free(p); }
const char* hepbundle_error_message(void) { return lastError.message.c_str(); }
const char* hepbundle_error_class(void) { return lastError.cls.c_str(); }
int hepbundle_error_code(void) { return lastError.code; }

}  // extern "C"
