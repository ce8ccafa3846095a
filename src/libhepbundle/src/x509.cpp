// Key and X.509 signature checks with OpenSSL 3 (src/hepbundle/_signers/keys.py and
// certificate.py): ECDSA by curve, RSA PKCS#1 v1.5 / SHA-256, chains to the policy's CAs at the
// signing time (named files or IGTF-style directories), subject DN globs, CRLs, no proxies.
#include <dirent.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ts.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "sig.hpp"

namespace hepbundle::detail {

namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

BioPtr memBio(const std::string& data) { return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size()))); }

std::string curveName(EVP_PKEY* key) {
  char name[80] = {0};
  std::size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, &len) != 1) return "";
  std::string n(name, len);
  if (n == "prime256v1" || n == "P-256") return "secp256r1";
  if (n == "P-384") return "secp384r1";
  if (n == "P-521") return "secp521r1";
  return n;
}

// EC public keys on the named curves a policy accepts, without OpenSSL 3's decoder/encoder
// lookup (d2i_PUBKEY, i2d_PUBKEY and the PEM forms cost 0.1-0.5 ms each per process, most of a
// first resolve): the SubjectPublicKeyInfo is read and written here, the key built from its
// group and point by EVP_PKEY_fromdata. Anything else (another curve, explicit parameters, RSA,
// Ed25519…) goes through OpenSSL as before.
struct Curve {
  const char* name;
  std::string oid;  // the curve OID's content bytes
};
const Curve kCurves[] = {{"secp256r1", std::string("\x2a\x86\x48\xce\x3d\x03\x01\x07", 8)},
                         {"secp384r1", std::string("\x2b\x81\x04\x00\x22", 5)},
                         {"secp521r1", std::string("\x2b\x81\x04\x00\x23", 5)}};
const std::string kEcPublicKeyOid("\x2a\x86\x48\xce\x3d\x02\x01", 7);

std::string derLength(std::size_t n) {
  if (n < 0x80) return std::string(1, static_cast<char>(n));
  std::string bytes;
  for (; n; n >>= 8) bytes.insert(bytes.begin(), static_cast<char>(n & 0xff));
  return std::string(1, static_cast<char>(0x80 | bytes.size())) + bytes;
}
std::string derTlv(unsigned char tag, const std::string& content) { return std::string(1, static_cast<char>(tag)) + derLength(content.size()) + content; }

// the DER SubjectPublicKeyInfo of an EC point on a named curve
std::string ecSpki(const Curve& c, const std::string& point) {
  return derTlv(0x30, derTlv(0x30, derTlv(0x06, kEcPublicKeyOid) + derTlv(0x06, c.oid)) + derTlv(0x03, std::string(1, '\0') + point));
}

// the curve and point of a canonical EC SubjectPublicKeyInfo on a known curve (else false)
bool parseEcSpki(const std::string& der, const Curve*& curve, std::string& point) {
  for (const auto& c : kCurves) {
    const std::string oidPart = derTlv(0x06, kEcPublicKeyOid) + derTlv(0x06, c.oid);
    if (der.find(oidPart) == std::string::npos) continue;
    // the point is what follows the BIT STRING's header and unused-bits byte; the whole
    // encoding must be exactly the canonical one for that point
    const auto at = der.find(oidPart) + oidPart.size();
    if (at + 3 > der.size() || static_cast<unsigned char>(der[at]) != 0x03) return false;
    std::size_t i = at + 1, len = static_cast<unsigned char>(der[i++]);
    if (len & 0x80) {
      const std::size_t nb = len & 0x7f;
      if (nb == 0 || nb > 2 || i + nb > der.size()) return false;
      len = 0;
      for (std::size_t k = 0; k < nb; ++k) len = (len << 8) | static_cast<unsigned char>(der[i++]);
    }
    if (len < 2 || i + len != der.size() || der[i] != '\0' || der[i + 1] != '\x04') return false;  // uncompressed only
    point = der.substr(i + 1, len - 1);
    curve = &c;
    return ecSpki(c, point) == der;
  }
  return false;
}

EVP_PKEY* ecKeyFrom(const Curve& c, const std::string& point) {
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr), EVP_PKEY_CTX_free);
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1) return nullptr;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>(c.name), 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, const_cast<char*>(point.data()), point.size()),
      OSSL_PARAM_construct_end()};
  EVP_PKEY* key = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params) != 1) return nullptr;
  return key;
}

std::int64_t now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::int64_t asn1Time(const ASN1_TIME* t) {
  std::tm tm{};
  ASN1_TIME_to_tm(t, &tm);
  return static_cast<std::int64_t>(timegm(&tm));
}

std::string utf8(const ASN1_STRING* s) {
  unsigned char* out = nullptr;
  const int n = ASN1_STRING_to_UTF8(&out, s);
  if (n < 0) return "";
  std::string r(reinterpret_cast<char*>(out), static_cast<std::size_t>(n));
  OPENSSL_free(out);
  return r;
}

// cryptography's _NAMEOID_TO_NAME (what rfc4514_attribute_name gives), else the dotted OID
std::string attrName(const ASN1_OBJECT* obj, bool grid) {
  switch (OBJ_obj2nid(obj)) {
    case NID_commonName: return "CN";
    case NID_localityName: return "L";
    case NID_stateOrProvinceName: return "ST";
    case NID_organizationName: return "O";
    case NID_organizationalUnitName: return "OU";
    case NID_countryName: return "C";
    case NID_streetAddress: return "STREET";
    case NID_domainComponent: return "DC";
    case NID_userId: return "UID";
    case NID_pkcs9_emailAddress:
      if (grid) return "emailAddress";
      break;
    case NID_serialNumber:
      if (grid) return "serialNumber";
      break;
    default: break;
  }
  char buf[128];
  OBJ_obj2txt(buf, sizeof buf, obj, 1);
  return buf;
}

std::string escapeDn(std::string v) {
  if (v.empty()) return "";
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"' || c == '+' || c == ',' || c == ';' || c == '<' || c == '>') out += '\\';
    if (c == '\0') {
      out += "\\00";
      continue;
    }
    out += c;
  }
  if (out[0] == '#' || out[0] == ' ') out = "\\" + out;
  if (out.back() == ' ') out = out.substr(0, out.size() - 1) + "\\ ";
  return out;
}

std::string readFileOr(const std::string& path, const std::string& what, bool specError = true) {
  try {
    return readSmallFile(path, 16u << 20);
  } catch (const ReadError& e) {
    const std::string why = e.tooBig ? "larger than 16 MiB" : e.notRegular ? "not a regular file" : std::strerror(e.err);
    if (specError) throw SpecError("cannot read " + what + " " + path + ": " + why);
    throw;
  }
}

std::vector<CertPtr> loadCerts(const std::string& path, const std::string& what) {
  const std::string data = readFileOr(path, what);
  auto bio = memBio(data);
  std::vector<CertPtr> out;
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(x, X509Free{});
  ERR_clear_error();
  if (out.empty()) throw SpecError(path + " is not a PEM certificate file (" + what + ")");
  return out;
}

bool isDir(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Path.suffix: the last ".x" of the final component (none for dot-files)
std::string suffixOf(const std::string& name) {
  const auto pos = name.rfind('.');
  if (pos == std::string::npos || pos == 0 || pos == name.size() - 1) return "";
  return name.substr(pos);
}

bool allDigits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

CaStore loadOne(const std::vector<std::string>& files, const std::string* dir, std::vector<std::string> crlFiles) {
  CaStore store;
  std::vector<std::string> names;
  for (const auto& f : files) {
    auto certs = loadCerts(f, "CA certificate");
    store.cas.insert(store.cas.end(), certs.begin(), certs.end());
    names.push_back(f);
  }
  if (dir) {
    if (!isDir(*dir)) throw SpecError("CA directory " + *dir + " does not exist");
    names.push_back(*dir + "/");
    std::vector<std::string> entries;
    if (struct stat st {}; ::stat(dir->c_str(), &st) == 0) ReadRecorder::note(*dir, st);  // a file added or removed
    if (DIR* d = opendir(dir->c_str())) {
      while (dirent* e = readdir(d)) {
        const std::string n = e->d_name;
        if (n != "." && n != "..") entries.push_back(n);
      }
      closedir(d);
    }
    std::sort(entries.begin(), entries.end());
    for (const auto& n : entries) {
      const std::string sfx = suffixOf(n), digits = sfx.empty() ? "" : sfx.substr(1);
      const std::string p = *dir + "/" + n;
      if ((allDigits(digits) && digits.size() == 1) || sfx == ".pem") {
        auto certs = loadCerts(p, "CA certificate");
        store.cas.insert(store.cas.end(), certs.begin(), certs.end());
      } else if (!digits.empty() && digits[0] == 'r' && allDigits(digits.substr(1))) {
        crlFiles.push_back(p);
      }
    }
  }
  for (const auto& f : crlFiles) {
    std::string data;
    try {
      data = readSmallFile(f, 64u << 20);
    } catch (const ReadError& e) {
      throw SpecError("cannot read CRL " + f + ": " + (e.err ? std::strerror(e.err) : "not a regular file"));
    }
    X509_CRL* crl = nullptr;
    if (data.find("-----BEGIN") != std::string::npos) {
      auto bio = memBio(data);
      crl = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr);
    } else {
      const unsigned char* p = reinterpret_cast<const unsigned char*>(data.data());
      crl = d2i_X509_CRL(nullptr, &p, static_cast<long>(data.size()));
    }
    ERR_clear_error();
    if (!crl) throw SpecError("cannot read CRL " + f + ": Could not load CRL");
    store.crls.emplace_back(crl, CrlFree{});
  }
  if (store.cas.empty())
    throw SpecError("no CA certificates found in " + (names.empty() ? std::string("(nothing given)") : join(names, ", ")));
  store.label = join(names, ", ");
  return store;
}

bool isProxy(X509* cert) {
  static const char* oids[] = {"1.3.6.1.5.5.7.1.14", "1.3.6.1.4.1.3536.1.222"};
  for (int i = 0; i < X509_get_ext_count(cert); ++i) {
    char buf[80];
    OBJ_obj2txt(buf, sizeof buf, X509_EXTENSION_get_object(X509_get_ext(cert, i)), 1);
    for (const char* o : oids)
      if (std::strcmp(buf, o) == 0) return true;
  }
  return false;
}

void checkRevoked(const CaStore& store, X509* cert) {
  for (const auto& crl : store.crls) {
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl.get()), X509_get_issuer_name(cert)) != 0) continue;
    X509* issuer = nullptr;
    for (const auto& ca : store.cas)
      if (X509_NAME_cmp(X509_get_subject_name(ca.get()), X509_CRL_get_issuer(crl.get())) == 0) {
        issuer = ca.get();
        break;
      }
    if (!issuer) continue;
    EVP_PKEY* key = X509_get0_pubkey(issuer);
    if (!key || X509_CRL_verify(crl.get(), key) != 1) {
      ERR_clear_error();
      continue;
    }
    X509_REVOKED* rev = nullptr;
    if (X509_CRL_get0_by_serial(crl.get(), &rev, X509_get0_serialNumber(cert)) == 1 && rev) {
      throw PolicyError("certificate " + dnString(X509_get_subject_name(cert)) + " was revoked on " +
                        formatUtc(asn1Time(X509_REVOKED_get0_revocationDate(rev)), "%Y-%m-%d") + " (CRL of " +
                        dnString(X509_CRL_get_issuer(crl.get())) + ")");
    }
  }
}

std::string chainError(const CaStore& store, const std::vector<CertPtr>& chain, std::int64_t at) {
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> xs(X509_STORE_new(), X509_STORE_free);
  for (const auto& ca : store.cas) X509_STORE_add_cert(xs.get(), ca.get());
  std::unique_ptr<STACK_OF(X509), void (*)(STACK_OF(X509)*)> untrusted(sk_X509_new_null(), [](STACK_OF(X509)* s) { sk_X509_free(s); });
  for (std::size_t i = 1; i < chain.size(); ++i) sk_X509_push(untrusted.get(), chain[i].get());
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(), X509_STORE_CTX_free);
  X509_STORE_CTX_init(ctx.get(), xs.get(), chain[0].get(), untrusted.get());
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(at));
  // a CA of the policy is a trust anchor even if it is not self-signed (as cryptography's store)
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
  const int ok = X509_verify_cert(ctx.get());
  ERR_clear_error();
  if (ok == 1) return "";
  return X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
}

}  // namespace

std::vector<CertPtr> certsFromPem(const std::string& pem) {
  auto bio = memBio(pem);
  std::vector<CertPtr> out;
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(x, X509Free{});
  ERR_clear_error();
  if (out.empty()) throw SpecError("an inline CA certificate is not valid PEM");
  return out;
}

void CaStore::add(const CaStore& other) {
  cas.insert(cas.end(), other.cas.begin(), other.cas.end());
  crls.insert(crls.end(), other.crls.begin(), other.crls.end());
  label += ", " + other.label;
}

CaStore loadCaStore(const std::vector<std::string>& caFiles, const std::vector<std::string>& caDirs,
                    const std::vector<std::string>& crls, const std::vector<std::string>& inlinePems) {
  std::vector<std::string> files, dirs = caDirs;
  for (const auto& f : caFiles) (isDir(f) ? dirs : files).push_back(f);
  std::vector<CertPtr> inlined;
  for (const auto& pem : inlinePems) {
    auto certs = certsFromPem(pem);
    inlined.insert(inlined.end(), certs.begin(), certs.end());
  }
  // policy.py _store: inline certificates alone make a store of their own label
  CaStore store;
  if (!files.empty() || !dirs.empty() || inlined.empty()) store = loadOne(files, dirs.empty() ? nullptr : &dirs[0], crls);
  else store.label = "inline CA certificates";
  store.cas.insert(store.cas.end(), inlined.begin(), inlined.end());
  for (std::size_t i = 1; i < dirs.size(); ++i) store.add(loadOne({}, &dirs[i], {}));
  return store;
}

std::string keyId(EVP_PKEY* key) {
  // sha256 of the PEM SubjectPublicKeyInfo PEM_write_bio_PUBKEY writes (64-column base64); for an
  // EC key on a named curve the DER is built here from its group and point (ecSpki)
  std::string der;
  const std::string curve = EVP_PKEY_get_base_id(key) == EVP_PKEY_EC ? curveName(key) : "";
  for (const auto& c : kCurves) {
    if (curve != c.name) continue;
    unsigned char point[256];
    std::size_t len = 0;
    if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point, &len) == 1 && len && point[0] == 0x04)
      der = ecSpki(c, std::string(reinterpret_cast<char*>(point), len));
  }
  if (der.empty()) {
    unsigned char* out = nullptr;
    const int n = i2d_PUBKEY(key, &out);
    if (n <= 0) return "sha256:";
    der.assign(reinterpret_cast<char*>(out), static_cast<std::size_t>(n));
    OPENSSL_free(out);
  }
  std::string b64(4 * ((der.size() + 2) / 3) + 1, '\0');
  b64.resize(static_cast<std::size_t>(
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(&b64[0]), reinterpret_cast<const unsigned char*>(der.data()), static_cast<int>(der.size()))));
  std::string pem = "-----BEGIN PUBLIC KEY-----\n";
  for (std::size_t i = 0; i < b64.size(); i += 64) pem += b64.substr(i, 64) + "\n";
  pem += "-----END PUBLIC KEY-----\n";
  return "sha256:" + sha256Hex(pem);
}

std::string describeKey(EVP_PKEY* key) {
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_EC: return "EC " + curveName(key);
    case EVP_PKEY_RSA: return "RSA-" + std::to_string(EVP_PKEY_get_bits(key));
    case EVP_PKEY_ED25519: return "Ed25519PublicKey";
    case EVP_PKEY_ED448: return "Ed448PublicKey";
    case EVP_PKEY_DSA: return "DSAPublicKey";
    default: return "unknown";
  }
}

void checkKey(EVP_PKEY* key, const std::string& where, bool allowRsa) {
  const int id = EVP_PKEY_get_base_id(key);
  if (id == EVP_PKEY_EC) {
    const std::string c = curveName(key);
    if (c == "secp256r1" || c == "secp384r1" || c == "secp521r1") return;
  } else if (id == EVP_PKEY_RSA && allowRsa && EVP_PKEY_get_bits(key) >= 2048) {
    return;
  }
  const std::string supported = std::string("EC P-256, P-384 or P-521") + (allowRsa ? " or RSA ≥ 2048 bits" : "");
  throw SigningError(where + ": unsupported key type " + describeKey(key) + "; use " + supported,
                     "generate one with: hepbundle key generate -o " + baseName(where));
}

KeyPtr loadPublicKey(const std::string& path) {
  std::string data;
  try {
    data = readSmallFile(path, 1u << 20);
  } catch (const ReadError& e) {
    throw SpecError("cannot read public key " + path + ": " +
                    (e.err ? std::strerror(e.err) : e.tooBig ? "larger than 1 MiB" : "not a regular file"));
  }
  return publicKeyFromPem(data, path);
}

KeyPtr publicKeyFromPem(const std::string& data, const std::string& path) {
  // the PUBLIC KEY block's DER decoded directly: PEM_read_bio_PUBKEY goes through OpenSSL 3's
  // decoder lookup (~0.3-0.5 ms per key); the same block it would pick (the first one so named)
  EVP_PKEY* key = nullptr;
  {
    auto bio = memBio(data);
    unsigned char* der = nullptr;
    long len = 0;
    if (PEM_bytes_read_bio(&der, &len, nullptr, PEM_STRING_PUBLIC, bio.get(), nullptr, nullptr) == 1) {
      const std::string spki(reinterpret_cast<char*>(der), static_cast<std::size_t>(len));
      const Curve* curve = nullptr;
      std::string point;
      if (parseEcSpki(spki, curve, point)) key = ecKeyFrom(*curve, point);
      if (!key) {
        const unsigned char* p = der;
        key = d2i_PUBKEY(nullptr, &p, len);
      }
      OPENSSL_free(der);
    }
  }
  if (!key) {
    auto bio2 = memBio(data);
    if (X509* x = PEM_read_bio_X509(bio2.get(), nullptr, nullptr, nullptr)) {
      key = X509_get_pubkey(x);
      X509_free(x);
    }
  }
  ERR_clear_error();
  if (!key) throw SpecError(path + " is not a PEM public key");
  KeyPtr out(key, PkeyFree{});
  try {
    checkKey(key, path, false);
  } catch (const SigningError& e) {
    throw SpecError(e.message(), "RSA keys sign through certificates: trust their CA");
  }
  return out;
}

void verifySignatureBytes(EVP_PKEY* key, const std::string& signature, const std::string& payload,
                          const std::string& where) {
  const std::string type = "application/vnd.in-toto+json";
  const std::string pae = "DSSEv1 " + std::to_string(type.size()) + " " + type + " " + std::to_string(payload.size()) + " " + payload;
  const EVP_MD* md = EVP_sha256();
  if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
    const int bits = EVP_PKEY_get_bits(key);
    md = bits == 384 ? EVP_sha384() : bits == 521 ? EVP_sha512() : EVP_sha256();
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_PKEY_CTX* pctx = nullptr;
  int ok = EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, key);
  if (ok == 1 && EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING);
  if (ok == 1)
    ok = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                          reinterpret_cast<const unsigned char*>(pae.data()), pae.size());
  ERR_clear_error();
  if (ok != 1)
    throw SignatureError(where + ": invalid signature: the signed statement does not verify with " + describeKey(key) + " key " +
                         keyId(key));
}

std::string dnString(const X509_NAME* name) {
  std::string out;
  for (int i = 0; i < X509_NAME_entry_count(name); ++i) {
    const X509_NAME_ENTRY* e = X509_NAME_get_entry(name, i);
    out += "/" + attrName(X509_NAME_ENTRY_get_object(e), true) + "=" + utf8(X509_NAME_ENTRY_get_data(e));
  }
  return out.empty() ? "/" : out;
}

std::string rfc4514String(const X509_NAME* name) {
  std::vector<std::string> rdns;
  int lastSet = -1;
  for (int i = 0; i < X509_NAME_entry_count(name); ++i) {
    const X509_NAME_ENTRY* e = X509_NAME_get_entry(name, i);
    const std::string attr = attrName(X509_NAME_ENTRY_get_object(e), false) + "=" + escapeDn(utf8(X509_NAME_ENTRY_get_data(e)));
    const int set = X509_NAME_ENTRY_set(e);
    if (set == lastSet && !rdns.empty()) rdns.back() += "+" + attr;
    else rdns.push_back(attr);
    lastSet = set;
  }
  std::reverse(rdns.begin(), rdns.end());
  return join(rdns, ",");
}

bool dnMatches(const X509_NAME* name, const std::string& pattern) {
  const std::string subject = startsWith(pattern, "/") ? dnString(name) : rfc4514String(name);
  return fnmatchcase(subject, pattern);
}

void verifyX509(const Candidate& c, const CaStore& store) {
  const ParsedSignature& sig = c.sig;
  X509* leaf = sig.chain[0].get();
  const std::string who = dnString(X509_get_subject_name(leaf));
  if (isProxy(leaf))
    throw PolicyError(sig.name + ": " + who +
                      " is an RFC 3820 proxy certificate; sign with the end-entity certificate (usercert.pem/userkey.pem) instead");
  // the TSA proves when the signature existed: judge the certificate as of then (policy.py)
  const std::int64_t at = c.timestampedAt ? *c.timestampedAt : c.signedAt;
  if (at > now() + 300) throw SignatureError(sig.name + ": signing time " + formatUtc(at) + " is in the future");
  const std::int64_t nb = asn1Time(X509_get0_notBefore(leaf)), na = asn1Time(X509_get0_notAfter(leaf));
  if (!(nb <= at && at <= na))
    throw SignatureError(sig.name + ": certificate " + who + " expired at signing time: signed " + formatUtc(at) + ", valid " +
                         formatUtc(nb, "%Y-%m-%d") + " to " + formatUtc(na, "%Y-%m-%d"));
  const std::string problem = chainError(store, sig.chain, at);
  if (!problem.empty())
    throw PolicyError(sig.name + ": untrusted CA: " + who + " issued by " + dnString(X509_get_issuer_name(leaf)) +
                      " does not chain to a trusted CA (" + store.label + "): " + problem);
  checkRevoked(store, leaf);
  if ((X509_get_extension_flags(leaf) & EXFLAG_KUSAGE) && !(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE))
    throw SignatureError(sig.name + ": certificate " + who + " is not allowed to sign");
  EVP_PKEY* pub = X509_get0_pubkey(leaf);
  if (!pub) throw SignatureError(sig.name + ": malformed signature file: unreadable certificate key");
  checkKey(pub, sig.name, true);
  verifySignatureBytes(pub, sig.signature, sig.payload, sig.name);
  // without a token the claimed time proves nothing once the certificate has expired
  if (!c.timestampedAt && now() > na)
    throw SignatureError(sig.name + ": certificate " + who + " expired on " + formatUtc(na, "%Y-%m-%d") +
                             " and the signature carries no RFC 3161 timestamp proving it was made before",
                         "re-sign with a valid certificate (sign --tsa URL keeps it verifiable after the certificate expires)");
}

std::int64_t verifyTimestamp(const std::string& token, const std::string& data, const std::vector<CertPtr>& roots,
                             const std::string& where) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(token.data());
  std::unique_ptr<TS_RESP, decltype(&TS_RESP_free)> resp(d2i_TS_RESP(nullptr, &p, static_cast<long>(token.size())), TS_RESP_free);
  if (!resp || p != reinterpret_cast<const unsigned char*>(token.data()) + token.size()) {
    ERR_clear_error();
    throw SignatureError(where + ": malformed RFC 3161 timestamp: not a DER TimeStampResp");
  }
  if (roots.empty())
    throw PolicyError(where + " carries an RFC 3161 timestamp, but the trust policy names no TSA",
                      "add the TSA's root certificate to the policy: tsa: {ca: tsa-root.pem}");
  std::unique_ptr<TS_VERIFY_CTX, decltype(&TS_VERIFY_CTX_free)> ctx(TS_VERIFY_CTX_new(), TS_VERIFY_CTX_free);
  X509_STORE* store = X509_STORE_new();
  for (const auto& r : roots) X509_STORE_add_cert(store, r.get());
  TS_VERIFY_CTX_set_store(ctx.get(), store);  // owned by ctx from here
  TS_VERIFY_CTX_set_data(ctx.get(), BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  // the TSA's signature and its chain to a root of the policy (timeStamping usage), the
  // version, and the message imprint of the signature bytes
  TS_VERIFY_CTX_add_flags(ctx.get(), TS_VFY_VERSION | TS_VFY_SIGNATURE | TS_VFY_DATA);
  if (TS_RESP_verify_response(ctx.get(), resp.get()) != 1) {
    unsigned long err = 0, e;
    while ((e = ERR_get_error()) != 0) err = err ? err : e;
    const std::string text = err ? ERR_reason_error_string(err) ? ERR_reason_error_string(err) : "verification failed" : "verification failed";
    ERR_clear_error();
    const std::string msg = where + ": RFC 3161 timestamp refused: " + text;
    if (ERR_GET_LIB(err) == ERR_LIB_TS && ERR_GET_REASON(err) == TS_R_MESSAGE_IMPRINT_MISMATCH) throw SignatureError(msg);
    throw PolicyError(msg);
  }
  const TS_TST_INFO* info = TS_RESP_get_tst_info(resp.get());
  const ASN1_GENERALIZEDTIME* gen = info ? TS_TST_INFO_get_time(info) : nullptr;
  if (!gen) throw SignatureError(where + ": malformed RFC 3161 timestamp: no genTime");
  return asn1Time(gen);
}

std::pair<std::string, std::string> sigstoreIdentity(X509* cert) {
  std::vector<std::string> emails, uris;
  if (auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr))) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
      GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
      if (g->type == GEN_EMAIL) emails.push_back(utf8(g->d.rfc822Name));
      if (g->type == GEN_URI) uris.push_back(utf8(g->d.uniformResourceIdentifier));
    }
    GENERAL_NAMES_free(names);
  }
  emails.insert(emails.end(), uris.begin(), uris.end());
  std::string issuer;
  for (int i = 0; i < X509_get_ext_count(cert); ++i) {
    X509_EXTENSION* ext = X509_get_ext(cert, i);
    char buf[80];
    OBJ_obj2txt(buf, sizeof buf, X509_EXTENSION_get_object(ext), 1);
    if (std::strcmp(buf, "1.3.6.1.4.1.57264.1.1") == 0) {
      const ASN1_OCTET_STRING* d = X509_EXTENSION_get_data(ext);
      issuer.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(d)), static_cast<std::size_t>(ASN1_STRING_length(d)));
    }
  }
  ERR_clear_error();
  return {emails.empty() ? "?" : emails[0], issuer};
}

}  // namespace hepbundle::detail
