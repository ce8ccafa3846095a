// Internal: parsed signature files and the cryptographic checks the policy leaves call.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdint>
#include <functional>
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
  std::vector<std::string> timestamps;  ///< RFC 3161 TimeStampResp tokens (DER) over signature
};

struct Candidate {
  ParsedSignature sig;
  std::string role;
  std::int64_t signedAt;
  /// the signing time an RFC 3161 timestamp proves (checked against the policy's TSA roots)
  std::optional<std::int64_t> timestampedAt = std::nullopt;
  Signer info(const std::string& kind, const std::string& identity, const std::string& issuer = "") const;
};

ParsedSignature parseSignature(const std::string& path, const std::string& name);
/// the same of a signature document already parsed (a catalogue statement's)
ParsedSignature parseSignatureDocument(const json& doc, const std::string& name);
/// the signature's in-toto statement (SignatureError if its payload is not one)
json signedStatement(const ParsedSignature& sig);
/// predicate.hepbundle.signedAt, else now (plain model_signing records no time)
std::int64_t signedTime(const json& stmt);
/// path → hex digest the statement signs; std::invalid_argument with Python's words if malformed
std::map<std::string, std::string> statementDigests(const json& stmt);
/// the one digest algorithm of the statement (SignatureError if unknown or mixed)
std::string statementAlgorithm(const ParsedSignature& sig, const json& stmt);
/// the role the statement signs; SignatureError when the file name claims another
std::string signedRole(const ParsedSignature& sig, const json& stmt, const std::string& fileRole, const std::string& what);
/// signing._check_statement: the signed digests must be exactly expected, in alg
void checkSignedDigests(const ParsedSignature& sig, const json& stmt, const std::map<std::string, std::string>& expected, Algorithm alg,
                        const std::string& what);

/// a signature file parsed with its in-toto statement, and the role its file name claims
struct CheckedSignature {
  ParsedSignature sig;
  json stmt;
  std::string fileRole;
};
/// What verifyManifestSignature established before the manifest was parsed (signing.py
/// ManifestCheck): the bundle the signatures name, the policy that judged them, the signers.
struct ManifestCheck {
  std::string ref;
  PolicyPtr policy;
  std::vector<Signer> signers;
  std::vector<CheckedSignature> sigs;
};
/// The signatures over the manifest's BYTES, before its entries are parsed: each signature
/// must list the digest of exactly data as hepbundle.json, and the signers must satisfy
/// policyFor(name, version) of the bundle they signed. nullopt when the signatures name no
/// bundle (plain model_signing) or a small manifest differs (refused after parsing, with the
/// differing entries listed): then verifySignatures decides.
std::optional<ManifestCheck> verifyManifestSignature(
    const std::string& root, const std::string& data,
    const std::function<PolicyPtr(const std::string& name, const std::string& version)>& policyFor);
/// after parsing: the prechecked signatures must be for ref and list exactly expected
std::vector<Signer> finishPrechecked(const ManifestCheck& pre, const std::string& ref, Algorithm alg,
                                     const std::map<std::string, std::string>& expected);

/// "sha256:<hex>" of the PEM SubjectPublicKeyInfo
std::string keyId(EVP_PKEY* key);
/// "EC secp256r1", "RSA-2048"
std::string describeKey(EVP_PKEY* key);
/// a policy's public key (PEM key or certificate); SpecError as Python
KeyPtr loadPublicKey(const std::string& path);
/// the same from PEM text (an inline key of a trust root); where names it in errors
KeyPtr publicKeyFromPem(const std::string& pem, const std::string& where);
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
/// the certificates of PEM text (SpecError "an inline CA certificate is not valid PEM")
std::vector<CertPtr> certsFromPem(const std::string& pem);
/// named CA files (or directories) and CRLs, IGTF-style directories (<hash>.N, <hash>.rN)
CaStore loadCaStore(const std::vector<std::string>& caFiles, const std::vector<std::string>& caDirs,
                    const std::vector<std::string>& crls, const std::vector<std::string>& inlinePems = {});
/// the time an RFC 3161 token proves data (signature bytes) existed, checked against roots (the
/// policy's tsa: CAs); SignatureError (malformed, other data) or PolicyError (TSA not trusted)
std::int64_t verifyTimestamp(const std::string& token, const std::string& data, const std::vector<CertPtr>& roots,
                             const std::string& where);
/// an X.509 signature: validity at signing time, chain, proxy refusal, CRLs, key usage, signature
void verifyX509(const Candidate& c, const CaStore& store);
/// (identity, issuer) a Fulcio certificate claims (unverified)
std::pair<std::string, std::string> sigstoreIdentity(X509* cert);

}  // namespace hepbundle::detail

namespace hepbundle::detail {
/// the signers that satisfy the rule of policy for name (policy.cpp)
std::vector<Signer> evaluatePolicy(const TrustPolicy& policy, const std::string& name,
                                   const std::vector<Candidate>& candidates);
/// whether the rule for name has catalog: signers (its catalogue statements are signed)
bool signsCatalog(const TrustPolicy& policy, const std::string& name);
/// the signers of a catalogue statement (action publish, alias or yank) satisfying the rule's
/// catalog signers; PolicyError when the rule allows no one that action
std::vector<Signer> evaluateCatalog(const TrustPolicy& policy, const std::string& name, const std::string& action,
                                    const std::vector<Candidate>& candidates);
/// the roles whose approvals moving (and resolving) alias of name needs, in policy order
std::vector<std::string> requiredApprovals(const TrustPolicy& policy, const std::string& name, const std::string& alias);
/// the approval signers of role for alias in the rule of name, judging a record about label
std::vector<Signer> evaluateApproval(const TrustPolicy& policy, const std::string& name, const std::string& alias,
                                     const std::string& role, const std::string& label, const std::vector<Candidate>& candidates);
const std::string& policySource(const TrustPolicy& policy);
/// the root certificates of the RFC 3161 TSAs the policy trusts (tsa: ca)
const std::vector<CertPtr>& tsaRoots(const TrustPolicy& policy);
/// signing._timestamped_at: the earliest time the signature's tokens prove (nullopt without one)
std::optional<std::int64_t> timestampedAt(const ParsedSignature& sig, const TrustPolicy& policy, const std::string& where);
}  // namespace hepbundle::detail
