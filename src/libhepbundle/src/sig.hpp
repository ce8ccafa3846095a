// Internal: parsed signature files and the cryptographic checks the policy leaves call.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "internal.hpp"

namespace hepbundle::detail {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct CrlFree {
  void operator()(X509_CRL* x) const { X509_CRL_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using CertPtr = std::shared_ptr<X509>;
using CrlPtr = std::shared_ptr<X509_CRL>;
using KeyPtr = std::shared_ptr<EVP_PKEY>;

/// A signature file read but not yet trusted (src/hepbundle/_signers/__init__.py).
struct ParsedSignature {
  std::string name;  ///< file name
  std::string kind;  ///< key, x509, sigstore
  std::string payloadType;
  std::string payload;
  std::string signature;
  std::optional<std::string> keyHint;
  std::vector<CertPtr> chain;  ///< leaf first
};

struct Candidate {
  ParsedSignature sig;
  std::string role;
  std::int64_t signedAt;
  Signer info(const std::string& kind, const std::string& identity, const std::string& issuer = "") const;
};

ParsedSignature parseSignature(const std::string& path, const std::string& name);

/// "sha256:<hex>" of the PEM SubjectPublicKeyInfo
std::string keyId(EVP_PKEY* key);
/// "EC secp256r1", "RSA-2048"
std::string describeKey(EVP_PKEY* key);
/// a policy's public key (PEM key or certificate); SpecError as Python
KeyPtr loadPublicKey(const std::string& path);
/// DSSE signature over PAE(payload): SignatureError "invalid signature" if it fails
void verifySignatureBytes(EVP_PKEY* key, const std::string& signature, const std::string& payload,
                          const std::string& where);
/// SigningError unless EC P-256/384/521 (or RSA ≥ 2048 where allowRsa)
void checkKey(EVP_PKEY* key, const std::string& where, bool allowRsa);

/// "/DC=ch/DC=cern/OU=Users/CN=jdoe" (encoding order)
std::string dnString(const X509_NAME* name);
/// RFC 4514 ("CN=jdoe,OU=Users,DC=cern,DC=ch")
std::string rfc4514String(const X509_NAME* name);
bool dnMatches(const X509_NAME* name, const std::string& pattern);

struct CaStore {
  std::vector<CertPtr> cas;
  std::vector<CrlPtr> crls;
  std::string label;
  void add(const CaStore& other);
};
/// named CA files (or directories) and CRLs, IGTF-style directories (<hash>.N, <hash>.rN)
CaStore loadCaStore(const std::vector<std::string>& caFiles, const std::vector<std::string>& caDirs,
                    const std::vector<std::string>& crls);
/// an X.509 signature: validity at signing time, chain, proxy refusal, CRLs, key usage, signature
void verifyX509(const Candidate& c, const CaStore& store);
/// (identity, issuer) a Fulcio certificate claims (unverified)
std::pair<std::string, std::string> sigstoreIdentity(X509* cert);

}  // namespace hepbundle::detail

namespace hepbundle::detail {
/// the signers that satisfy the rule of policy for name (policy.cpp)
std::vector<Signer> evaluatePolicy(const TrustPolicy& policy, const std::string& name,
                                   const std::vector<Candidate>& candidates);
}  // namespace hepbundle::detail
