// hepbundle native library: the exception tree, class for class the Python one
// (src/hepbundle/errors.py). what() is the one-line message plus, when known, the hint
// in parentheses, exactly as Python's str(error).
//
// HepbundleError
// ├── SpecError            a policy file is malformed (names the file and line)
// ├── PathError            a path breaks the bundle path rules
// ├── BuildError           not a bundle directory
// ├── FormatError          a manifest or catalogue is malformed or of an unknown format
// ├── VerificationError    the artifact is not what it claims to be (exit code 1)
// │   ├── IntegrityError   missing, extra or modified files
// │   ├── SignatureError   unsigned, malformed or invalid signature
// │   ├── PolicyError      signature valid, but the signer is not allowed (or no policy at all)
// │   └── CatalogRollbackError  the catalogue is older than this node has seen, or expired
// ├── SigningError         unsupported key or certificate material
// ├── NotABundleError      a path given as a bundle is not one (missing, no hepbundle.json)
// ├── NotInBundleError     the bundle has no file of that name (Bundle::path)
// └── RepositoryError      repository failures
//     └── NotFoundError    an unknown reference, name, version or alias
//         ├── YankedError  the reference names a yanked version
//         └── ValidityError the version's validity scope excludes the job's context
// UsageError               arguments that do not fit together (@valid without a context, a
//                          malformed context)
#pragma once

#include <stdexcept>
#include <string>

namespace hepbundle {

class HepbundleError : public std::runtime_error {
 public:
  HepbundleError(const std::string& message, const std::string& hint = "")
      : std::runtime_error(hint.empty() ? message : message + " (" + hint + ")"),
        message_(message),
        hint_(hint) {}
  /// the message without the hint
  const std::string& message() const noexcept { return message_; }
  const std::string& hint() const noexcept { return hint_; }
  /// the Python class name ("IntegrityError", …): what the conformance test compares
  virtual const char* className() const noexcept { return "HepbundleError"; }
  /// process exit code the command line uses for this kind of error
  virtual int exitCode() const noexcept { return 2; }

 private:
  std::string message_;
  std::string hint_;
};

#define HEPBUNDLE_ERROR_CLASS(Name, Base)                                   \
  class Name : public Base {                                                \
   public:                                                                  \
    using Base::Base;                                                       \
    const char* className() const noexcept override { return #Name; }       \
  };

HEPBUNDLE_ERROR_CLASS(SpecError, HepbundleError)
HEPBUNDLE_ERROR_CLASS(PathError, HepbundleError)
HEPBUNDLE_ERROR_CLASS(BuildError, HepbundleError)
HEPBUNDLE_ERROR_CLASS(FormatError, HepbundleError)
HEPBUNDLE_ERROR_CLASS(SigningError, HepbundleError)
HEPBUNDLE_ERROR_CLASS(RepositoryError, HepbundleError)
HEPBUNDLE_ERROR_CLASS(NotFoundError, RepositoryError)
HEPBUNDLE_ERROR_CLASS(YankedError, NotFoundError)
HEPBUNDLE_ERROR_CLASS(ValidityError, NotFoundError)
HEPBUNDLE_ERROR_CLASS(UsageError, HepbundleError)
HEPBUNDLE_ERROR_CLASS(NotABundleError, HepbundleError)
HEPBUNDLE_ERROR_CLASS(NotInBundleError, HepbundleError)

class VerificationError : public HepbundleError {
 public:
  using HepbundleError::HepbundleError;
  const char* className() const noexcept override { return "VerificationError"; }
  int exitCode() const noexcept override { return 1; }
};

HEPBUNDLE_ERROR_CLASS(IntegrityError, VerificationError)
HEPBUNDLE_ERROR_CLASS(SignatureError, VerificationError)
HEPBUNDLE_ERROR_CLASS(PolicyError, VerificationError)
HEPBUNDLE_ERROR_CLASS(CatalogRollbackError, VerificationError)

#undef HEPBUNDLE_ERROR_CLASS

}  // namespace hepbundle
