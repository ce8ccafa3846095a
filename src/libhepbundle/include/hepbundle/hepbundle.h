/* hepbundle native library: plain C API over the C++ one, for other languages (ctypes, Fortran,
 * Julia, …). Thread safe; the last error is kept per thread.
 *
 *   hepbundle_bundle* b = hepbundle_resolve("atlas/tauid@prod", NULL, 0);
 *   if (!b) { fprintf(stderr, "%s\n", hepbundle_error_message()); return 1; }
 *   char* p = hepbundle_path(b, "model/model.onnx");   // free with hepbundle_free
 *   ...
 *   hepbundle_free(p); hepbundle_close(b);
 */
#ifndef HEPBUNDLE_H
#define HEPBUNDLE_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hepbundle_bundle hepbundle_bundle;

/* flags */
#define HEPBUNDLE_VERIFY_FULL 1       /* check every file at open */
#define HEPBUNDLE_VERIFY_NONE 2       /* check nothing (logged; not verified) */
#define HEPBUNDLE_ALLOW_YANKED 4      /* accept a yanked version */
#define HEPBUNDLE_NO_CACHE 8          /* do not use the node verification cache */
#define HEPBUNDLE_VERIFY_INTEGRITY 16 /* file digests only, signatures not checked (logged; not verified) */

/* policy: a trust policy YAML file, or NULL for HEPBUNDLE_POLICY, else the repository's trust
 * root. Without any, the bundle is refused (class PolicyError, the message says how to configure
 * trust) unless HEPBUNDLE_VERIFY_INTEGRITY or HEPBUNDLE_VERIFY_NONE asks for less. NULL on
 * failure. */
hepbundle_bundle* hepbundle_resolve(const char* ref, const char* policy, int flags);
hepbundle_bundle* hepbundle_open(const char* path, const char* policy, int flags);
/* verified absolute path of a payload file (malloc'ed: hepbundle_free), NULL on failure */
char* hepbundle_path(hepbundle_bundle* bundle, const char* file);
/* 0 if every file verifies, else -1 (the message lists the problems) */
int hepbundle_verify(hepbundle_bundle* bundle);
/* the bundle's namespace/name@version and manifest digest (owned by the bundle) */
const char* hepbundle_ref(const hepbundle_bundle* bundle);
const char* hepbundle_manifest_digest(const hepbundle_bundle* bundle);
/* 1 if the signatures were checked under a trust policy at open, 0 if not (integrity only / none) */
int hepbundle_verified(const hepbundle_bundle* bundle);
void hepbundle_close(hepbundle_bundle* bundle);
void hepbundle_free(void* p);

/* the last error of this thread: message, Python class name ("IntegrityError"), exit code */
const char* hepbundle_error_message(void);
const char* hepbundle_error_class(void);
int hepbundle_error_code(void);

#ifdef __cplusplus
}
#endif
#endif
