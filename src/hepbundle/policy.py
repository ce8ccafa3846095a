"""Trust policy: which signers may sign which bundle names, as composable AnyOf/AllOf rules.

A policy file (YAML, ``bundle-spec/v1/policy.schema.json``) lists rules; the first rule whose
``namespace`` pattern matches a bundle name applies. Its ``signers`` expression is a leaf
(``key``, ``x509``, ``sigstore``), a list (any one of), or ``{any_of: […]}`` / ``{all_of: […]}``,
so "author and release manager both signed" is ``all_of`` over two leaves. Example::

    version: 1
    rules:
      - namespace: "atlas/*"
        signers:
          - sigstore: {identity: "https://gitlab.cern.ch/atlas/ml//.gitlab-ci.yml@refs/heads/main",
                       issuer: "https://gitlab.cern.ch"}
          - x509: {ca_dir: /etc/grid-security/certificates,
                   subject: "/DC=ch/DC=cern/OU=Organic Units/OU=Users/CN=jdoe/*"}
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from cryptography.hazmat.primitives import serialization

from ._signers import ParsedSignature, SignatureKind
from ._signers.keys import (
    PublicKey,
    key_id,
    load_public_key,
    public_key_from_pem,
    verify_signature_bytes,
)
from ._yaml import LineMap, load_yaml
from .errors import PolicyError, SignatureError, SpecError, VerificationError

if TYPE_CHECKING:
    from cryptography import x509

    from ._signers.certificate import CaStore


# the X.509 verifier (and cryptography.x509) is imported where an X.509 rule is built or checked:
# a policy of keys only, as repository trust roots mostly are, never loads it (it was a third of
# a job's first resolve, docs/performance.md)


def _empty_store() -> CaStore:
    from ._signers.certificate import CaStore

    return CaStore()


__all__ = [
    "CATALOG_ACTIONS",
    "AllOf",
    "AllowKey",
    "AllowSigstore",
    "AllowX509",
    "AnyOf",
    "Candidate",
    "Rule",
    "SignerInfo",
    "TrustPolicy",
    "no_policy_error",
    "policy_from_env",
    "resolve_policy",
    "signer_name",
]

POLICY_ENV = "HEPBUNDLE_POLICY"


@dataclass(frozen=True)
class SignerInfo:
    """Who signed: kind (``key``, ``x509``, ``sigstore``), identity string, and details."""

    kind: str
    identity: str
    details: Any = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "identity": self.identity, **dict(self.details or {})}


@dataclass(frozen=True)
class Candidate:
    """One signature file of a bundle, parsed, with the role and signing time it claims."""

    sig: ParsedSignature
    role: str
    signed_at: dt.datetime
    #: the signing time an RFC 3161 timestamp proves (checked against the policy's TSA roots)
    timestamped_at: dt.datetime | None = None

    def info(self, kind: str, identity: str, **details: Any) -> SignerInfo:
        return SignerInfo(
            kind,
            identity,
            {
                "file": self.sig.name,
                "role": self.role,
                "signedAt": f"{self.signed_at:%Y-%m-%dT%H:%M:%SZ}",
                **(
                    {"timestampedAt": f"{self.timestamped_at:%Y-%m-%dT%H:%M:%SZ}"}
                    if self.timestamped_at
                    else {}
                ),
                **details,
            },
        )


class Node(Protocol):
    """A policy expression: returns the signers that satisfy it, or raises VerificationError."""

    def evaluate(self, name: str, candidates: Sequence[Candidate]) -> list[SignerInfo]: ...

    def describe(self) -> str: ...

    def to_json(self) -> Any:
        """The self-contained policy expression (keys and CA certificates inline as PEM)."""
        ...


def _now() -> dt.datetime:
    """The verification clock (one place, so tests can move it years ahead)."""
    return dt.datetime.now(dt.UTC)


def _with_role(doc: dict[str, Any], role: str | None) -> dict[str, Any]:
    return {**doc, "role": role} if role is not None else doc


@dataclass(frozen=True)
class _Leaf:
    role: str | None

    kind: ClassVar[SignatureKind]

    def check(self, name: str, c: Candidate) -> SignerInfo:
        raise NotImplementedError

    def evaluate(self, name: str, candidates: Sequence[Candidate]) -> list[SignerInfo]:
        mine = [
            c
            for c in candidates
            if c.sig.kind == self.kind and (self.role is None or c.role == self.role)
        ]
        if not mine:
            role = f" with role {self.role!r}" if self.role else ""
            raise PolicyError(f"no {self.kind} signature{role} (policy requires {self.describe()})")
        failures: list[VerificationError] = []
        for c in mine:
            try:
                return [self.check(name, c)]
            except VerificationError as e:
                failures.append(e)
        raise _pick(failures)

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class AllowKey(_Leaf):
    """A signature by one EC (or RSA) public key; ``name`` says whose it is (shown by ``show``
    and the catalogue site next to the fingerprint; it grants nothing)."""

    public_key: PublicKey | None = None
    name: str | None = None
    kind: ClassVar[SignatureKind] = "key"

    def check(self, name: str, c: Candidate) -> SignerInfo:
        assert self.public_key is not None
        want = key_id(self.public_key)
        have = c.sig.key_hint and f"sha256:{c.sig.key_hint}"
        if have and have != want:
            raise PolicyError(
                f"signer key {have} ({c.sig.name}) is not allowed to sign {name}; "
                f"the policy allows key {want}"
            )
        verify_signature_bytes(self.public_key, c.sig.signature, c.sig.payload, c.sig.name)
        return c.info("key", want)

    def describe(self) -> str:
        return f"key {key_id(self.public_key) if self.public_key else '?'}"

    def to_json(self) -> Any:
        assert self.public_key is not None
        pem = self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        doc = {"key": pem.decode("ascii")} | ({"name": self.name} if self.name else {})
        return _with_role(doc, self.role)


@dataclass(frozen=True)
class AllowX509(_Leaf):
    """A certificate chaining to ``store`` whose subject DN matches one of ``subjects``."""

    store: CaStore = field(default_factory=_empty_store)
    subjects: tuple[str, ...] = ("*",)
    #: the ``x509`` document with files inlined and directories absolute (see :meth:`to_json`)
    portable: Mapping[str, Any] = field(default_factory=dict, compare=False)
    kind: ClassVar[SignatureKind] = "x509"

    def check(self, name: str, c: Candidate) -> SignerInfo:
        from ._signers.certificate import dn_matches, dn_string, verify_x509

        leaf = c.sig.chain[0]
        dn = dn_string(leaf.subject)
        if not any(dn_matches(leaf.subject, p) for p in self.subjects):
            raise PolicyError(
                f"signer {dn} ({c.sig.name}) is not allowed to sign {name}; the policy allows "
                f"subjects {', '.join(self.subjects)}"
            )
        if c.timestamped_at is not None:
            # the TSA proves when the signature existed: judge the certificate as of then
            verify_x509(c.sig, self.store, c.timestamped_at)
        else:
            verify_x509(c.sig, self.store, c.signed_at)  # as of the claimed time first
            if _now() > leaf.not_valid_after_utc:
                raise SignatureError(
                    f"{c.sig.name}: certificate {dn} expired on {leaf.not_valid_after_utc:%Y-%m-%d} "
                    "and the signature carries no RFC 3161 timestamp proving it was made before",
                    hint="re-sign with a valid certificate (sign --tsa URL keeps it verifiable "
                    "after the certificate expires)",
                )
        return c.info("x509", dn, issuer=dn_string(leaf.issuer))

    def describe(self) -> str:
        return f"x509 {' or '.join(self.subjects)} under {self.store.label}"

    def to_json(self) -> Any:
        return _with_role({"x509": {**self.portable, "subject": list(self.subjects)}}, self.role)


@dataclass(frozen=True)
class AllowSigstore(_Leaf):
    """A keyless signature by ``identity`` as vouched for by ``issuer``, under a trust root."""

    identity: str = ""
    issuer: str = ""
    trust_config: Path | None = None
    kind: ClassVar[SignatureKind] = "sigstore"

    def check(self, name: str, c: Candidate) -> SignerInfo:
        from ._signers.sigstore import load_trusted_root, verify_sigstore

        try:
            verify_sigstore(c.sig, load_trusted_root(self.trust_config), self.identity, self.issuer)
        except PolicyError as e:
            raise PolicyError(f"{e.message}: not allowed to sign {name}") from None
        return c.info("sigstore", self.identity, issuer=self.issuer)

    def describe(self) -> str:
        return f"sigstore {self.identity} from {self.issuer}"

    def to_json(self) -> Any:
        doc: dict[str, Any] = {"identity": self.identity, "issuer": self.issuer}
        if self.trust_config is not None:
            doc["trust_config"] = str(self.trust_config)
        return _with_role({"sigstore": doc}, self.role)


def _pick(failures: Sequence[VerificationError]) -> VerificationError:
    """The error to report when no alternative passed: a broken signature beats a mismatch."""
    broken = [e for e in failures if isinstance(e, SignatureError)]
    if broken:
        return broken[0]
    msgs = list(dict.fromkeys(e.message for e in failures))
    return PolicyError("; ".join(msgs)) if len(msgs) > 1 else failures[0]


@dataclass(frozen=True)
class AnyOf:
    """Satisfied when one child is (children tried in order)."""

    children: tuple[Node, ...]

    def evaluate(self, name: str, candidates: Sequence[Candidate]) -> list[SignerInfo]:
        failures: list[VerificationError] = []
        for child in self.children:
            try:
                return child.evaluate(name, candidates)
            except VerificationError as e:
                failures.append(e)
        raise _pick(failures)

    def describe(self) -> str:
        return "any of (" + "; ".join(c.describe() for c in self.children) + ")"

    def to_json(self) -> Any:
        return {"any_of": [c.to_json() for c in self.children]}


@dataclass(frozen=True)
class AllOf:
    """Satisfied when every child is (for co-signatures: author and release manager)."""

    children: tuple[Node, ...]

    def evaluate(self, name: str, candidates: Sequence[Candidate]) -> list[SignerInfo]:
        out: list[SignerInfo] = []
        for child in self.children:
            out += [i for i in child.evaluate(name, candidates) if i not in out]
        return out

    def describe(self) -> str:
        return "all of (" + "; ".join(c.describe() for c in self.children) + ")"

    def to_json(self) -> Any:
        return {"all_of": [c.to_json() for c in self.children]}


#: the catalogue actions a signed statement records
CATALOG_ACTIONS = ("publish", "alias", "yank")


@dataclass(frozen=True)
class Rule:
    """Bundles whose name matches ``namespace`` must satisfy ``signers``; their catalogue
    statements (publish, alias move, yank) must be signed by ``catalog[action]`` when the rule
    names catalogue signers (None: the catalogue of these names is not signed)."""

    namespace: str
    signers: Node
    catalog: Mapping[str, Node] | None = None
    #: alias → role → who may sign that approval (``hepbundle approve --as ROLE``)
    approvals: Mapping[str, Mapping[str, Node]] | None = None

    def matches(self, name: str) -> bool:
        target = name if "/" in self.namespace else name.split("/", 1)[0]
        return fnmatch.fnmatchcase(target, self.namespace)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"namespace": self.namespace, "signers": self.signers.to_json()}
        if self.catalog is not None:
            doc["catalog"] = {a: n.to_json() for a, n in self.catalog.items()}
        if self.approvals:
            doc["approvals"] = {
                alias: {role: n.to_json() for role, n in roles.items()}
                for alias, roles in self.approvals.items()
            }
        return doc

    def with_catalog_signers(self) -> Rule:
        """This rule, with its bundle signers also signing every catalogue action if it names
        no catalogue signers (what ``repo init`` writes by default)."""
        if self.catalog is not None:
            return self
        return replace(self, catalog=dict.fromkeys(CATALOG_ACTIONS, self.signers))


@dataclass(frozen=True)
class TrustPolicy:
    """An ordered list of rules; the first matching one decides."""

    rules: tuple[Rule, ...]
    source: str = "<policy>"
    #: root certificates of the RFC 3161 Time-Stamping Authorities trusted for signing times
    tsa_roots: tuple[x509.Certificate, ...] = ()

    def rule_for(self, name: str) -> Rule:
        for r in self.rules:
            if r.matches(name):
                return r
        raise PolicyError(
            f"no rule of trust policy {self.source} covers {name}",
            hint="add a rule whose namespace pattern matches it",
        )

    def evaluate(self, name: str, candidates: Sequence[Candidate]) -> list[SignerInfo]:
        """The signers that satisfy the rule for ``name``; raises if the rule is not met."""
        return self.rule_for(name).signers.evaluate(name, candidates)

    def signer_names(self) -> dict[str, str]:
        """Key identity (``sha256:<fingerprint>``) → the ``name`` the policy gives its holder,
        over every rule's bundle, catalogue and approval signers (the first name wins)."""
        names: dict[str, str] = {}

        def walk(node: Node) -> None:
            if isinstance(node, AnyOf | AllOf):
                for child in node.children:
                    walk(child)
            elif isinstance(node, AllowKey) and node.name and node.public_key is not None:
                names.setdefault(key_id(node.public_key), node.name)

        for r in self.rules:
            walk(r.signers)
            for n in (r.catalog or {}).values():
                walk(n)
            for roles in (r.approvals or {}).values():
                for n in roles.values():
                    walk(n)
        return names

    def using_trust_config(self, path: Path) -> TrustPolicy:
        """A copy whose sigstore signers without their own trust root use ``path``."""
        return replace(
            self, rules=tuple(replace(r, signers=_with_root(r.signers, path)) for r in self.rules)
        )

    def to_json(self) -> dict[str, Any]:
        """The policy as a self-contained document (what a repository trust root holds): public
        keys and CA certificate files inline as PEM, directories and CRLs as absolute paths."""
        doc: dict[str, Any] = {"version": 1, "rules": [r.to_json() for r in self.rules]}
        if self.tsa_roots:
            pem = serialization.Encoding.PEM
            doc["tsa"] = {"ca": [c.public_bytes(pem).decode("ascii") for c in self.tsa_roots]}
        return doc

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrustPolicy:
        """Read and validate a policy file; errors name the line and field."""
        p = Path(path)
        data, lines = load_yaml(p, what="trust policy", aliases=False)
        return cls.from_data(data, base=p.resolve().parent, source=str(p), lines=lines)

    @classmethod
    def from_data(
        cls, data: Any, *, base: Path, source: str, lines: LineMap | None = None
    ) -> TrustPolicy:
        """A policy from its parsed document; relative paths are taken from ``base``."""
        from .spec import validate

        lines = lines or {}
        validate(data, "policy.schema.json", filename=source, lines=lines)

        def rule(i: int, r: Mapping[str, Any]) -> Rule:
            where = ("rules", i)
            signers = _node(r["signers"], base, lines, (*where, "signers"), source)
            approvals = {
                alias: {
                    role: _node(e, base, lines, (*where, "approvals", alias, role), source)
                    for role, e in roles.items()
                }
                for alias, roles in (r.get("approvals") or {}).items()
            }
            cat = r.get("catalog")
            if cat is None:
                return Rule(r["namespace"], signers, None, approvals)
            if isinstance(cat, Mapping) and set(cat) <= set(CATALOG_ACTIONS) and cat:
                nodes = {
                    a: _node(e, base, lines, (*where, "catalog", a), source) for a, e in cat.items()
                }
            else:
                nodes = dict.fromkeys(
                    CATALOG_ACTIONS, _node(cat, base, lines, (*where, "catalog"), source)
                )
            return Rule(r["namespace"], signers, nodes, approvals)

        tsa: list[x509.Certificate] = []
        tsa_cas = (data.get("tsa") or {}).get("ca") or []
        if tsa_cas:
            from cryptography import x509
        for ca in tsa_cas:
            try:
                text = ca.encode() if ca.startswith(_PEM) else (base / ca).read_bytes()
                tsa += x509.load_pem_x509_certificates(text)
            except (OSError, ValueError) as e:
                raise SpecError(
                    f"{source}: tsa.ca {ca[:40]!r}: not a readable PEM certificate: {e}"
                ) from None
        return cls(
            tuple(rule(i, r) for i, r in enumerate(data["rules"])),
            source=source,
            tsa_roots=tuple(tsa),
        )

    def catalog_signers(self, name: str, action: str) -> Node | None:
        """Who may sign a catalogue ``action`` for ``name`` (None: the rule does not sign its
        catalogue); an action the rule's ``catalog`` leaves out may not be taken by anyone."""
        rule = self.rule_for(name)
        if rule.catalog is None:
            return None
        node = rule.catalog.get(action)
        if node is None:
            raise PolicyError(
                f"the trust policy {self.source} allows no one to {action} {name}",
                hint=f"add '{action}' to the catalog: signers of the rule {rule.namespace!r}",
            )
        return node

    def required_approvals(self, name: str, alias: str) -> Mapping[str, Node]:
        """Role → signers of the approvals pointing ``alias`` of ``name`` needs (may be empty)."""
        return (self.rule_for(name).approvals or {}).get(alias, {})

    def signs_catalog(self, name: str) -> bool:
        return self.rule_for(name).catalog is not None

    def with_catalog_signers(self) -> TrustPolicy:
        """See :meth:`Rule.with_catalog_signers`."""
        return replace(self, rules=tuple(r.with_catalog_signers() for r in self.rules))

    @classmethod
    def from_flags(
        cls,
        *,
        keys: Sequence[str | os.PathLike[str]] = (),
        ca: Sequence[str | os.PathLike[str]] = (),
        subjects: Sequence[str] = (),
        identity: str | None = None,
        issuer: str | None = None,
        trust_config: Path | None = None,
    ) -> TrustPolicy | None:
        """The one-rule policy of the CLI's quick flags (any of the named signers may sign any
        bundle); None when no flag was given."""
        leaves: list[Node] = [AllowKey(None, public_key=load_public_key(Path(k))) for k in keys]
        ca_paths = [Path(c) for c in ca]
        if ca_paths or subjects:
            if not ca_paths:
                raise SpecError("--subject needs --ca (the CA certificates or directory to trust)")
            store, portable = _store(ca_paths)
            leaves.append(
                AllowX509(None, store=store, subjects=tuple(subjects) or ("*",), portable=portable)
            )
        if identity or issuer:
            if not (identity and issuer):
                raise SpecError("--identity and --issuer go together")
            leaves.append(
                AllowSigstore(None, identity=identity, issuer=issuer, trust_config=trust_config)
            )
        if not leaves:
            return None
        return cls((Rule("*", AnyOf(tuple(leaves))),), source="command-line flags")


def _with_root(node: Node, path: Path) -> Node:
    if isinstance(node, AnyOf | AllOf):
        return replace(node, children=tuple(_with_root(c, path) for c in node.children))
    if isinstance(node, AllowSigstore) and node.trust_config is None:
        return replace(node, trust_config=path)
    return node


_PEM = "-----BEGIN"


def _store(
    paths: Sequence[Path], crls: Sequence[Path] = (), inline: Sequence[str] = ()
) -> tuple[CaStore, dict[str, Any]]:
    """The CA store of CA files, IGTF directories and inline PEM certificates, and its portable
    form (files and inline certificates as PEM, directories and CRLs as absolute paths)."""
    from cryptography import x509

    from ._signers.certificate import CaStore

    files = [p for p in paths if not p.is_dir()]
    dirs = [p for p in paths if p.is_dir()]
    pems: list[str] = []
    for text in inline:
        try:
            certs = x509.load_pem_x509_certificates(text.encode("ascii"))
        except ValueError:
            raise SpecError("an inline CA certificate is not valid PEM") from None
        pems += [c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certs]
    if files or dirs or not pems:
        store = CaStore.load(files, dirs[0] if dirs else None, crls)
    else:
        store = CaStore(label="inline CA certificates")
    for d in dirs[1:]:
        extra = CaStore.load((), d)
        store.cas += extra.cas
        store.crls += extra.crls
        store.label += f", {extra.label}"
    for text in pems:
        store.cas.append(x509.load_pem_x509_certificate(text.encode("ascii")))
    file_pems = [
        c.public_bytes(serialization.Encoding.PEM).decode("ascii")
        for f in files
        for c in x509.load_pem_x509_certificates(f.read_bytes())
    ]
    portable: dict[str, Any] = {"ca": file_pems + pems} if file_pems or pems else {}
    if dirs:
        portable["ca_dir"] = str(dirs[0].resolve())
    if crls:
        portable["crl"] = [str(c.resolve()) for c in crls]
    return store, portable


def _node(
    spec: Any, base: Path, lines: LineMap, where: tuple[str | int, ...], filename: str
) -> Node:
    def rel(p: str) -> Path:
        return (base / os.path.expanduser(p)).resolve()

    def as_list(v: Any) -> list[Any]:
        return list(v) if isinstance(v, list) else [v]

    if isinstance(spec, list):
        return AnyOf(
            tuple(_node(s, base, lines, (*where, i), filename) for i, s in enumerate(spec))
        )
    assert isinstance(spec, Mapping)
    for op, cls_ in (("any_of", AnyOf), ("all_of", AllOf)):
        if op in spec:
            kids = spec[op]
            return cls_(
                tuple(_node(s, base, lines, (*where, op, i), filename) for i, s in enumerate(kids))
            )
    role = spec.get("role")
    try:
        if "key" in spec:
            key = spec["key"]
            named = spec.get("name")
            if key.startswith(_PEM):
                pub = public_key_from_pem(key.encode(), "inline key")
                return AllowKey(role, public_key=pub, name=named)
            return AllowKey(role, public_key=load_public_key(rel(key)), name=named)
        if "x509" in spec:
            x = spec["x509"]
            cas = as_list(x.get("ca", []))
            paths = [rel(c) for c in cas if not c.startswith(_PEM)]
            if "ca_dir" in x:
                paths.append(rel(x["ca_dir"]))
            store, portable = _store(
                paths,
                [rel(c) for c in as_list(x.get("crl", []))],
                [c for c in cas if c.startswith(_PEM)],
            )
            return AllowX509(
                role,
                store=store,
                subjects=tuple(as_list(x.get("subject", "*"))),
                portable=portable,
            )
        s = spec["sigstore"]
        tc = s.get("trust_config")
        return AllowSigstore(
            role, identity=s["identity"], issuer=s["issuer"], trust_config=rel(tc) if tc else None
        )
    except SpecError as e:
        line = lines.get(where)
        raise SpecError(f"{filename}:{line}: {e.message}" if line else e.message) from None


def signer_name(identity: str, names: Mapping[str, str]) -> str | None:
    """The readable name of a signer identity as a catalogue records it: the policy's ``name``
    of a key (:meth:`TrustPolicy.signer_names`), the common name of a certificate subject DN
    (the last ``CN`` of ``/DC=ch/…/CN=jdoe/CN=Jane Doe``, the first of RFC 4514 ``CN=…,O=…``);
    None for a sigstore identity (an e-mail or workflow URI, readable as it is) or an unnamed
    key."""
    if identity in names:
        return names[identity]
    if identity.startswith("/"):
        cns = re.findall(r"/CN=([^/]+)", identity)
        return cns[-1] if cns else None
    m = re.match(r"(?:[A-Za-z.]+=[^,]*,)*?CN=([^,]+)", identity) if "=" in identity else None
    return m[1] if m else None


def policy_from_env() -> TrustPolicy | None:
    """The policy named by ``HEPBUNDLE_POLICY``, or None when it is unset. Set but empty, or
    naming a file that cannot be read, is an error: a job that meant to configure trust and got
    it wrong must not run as if it had configured none."""
    from . import config

    if not config.is_set(POLICY_ENV):
        return None
    path = config.value(POLICY_ENV)
    if path is None or not path.strip():
        raise PolicyError(
            f"{POLICY_ENV} is set but empty",
            hint=f"point {POLICY_ENV} at a trust policy file, or unset it",
        )
    try:
        return TrustPolicy.load(path)
    except SpecError as e:
        raise PolicyError(f"{POLICY_ENV}={path}: {e.message}", hint=e.hint) from None


#: how to configure trust, for every refusal that has no policy to apply
CONFIGURE_TRUST_HINT = (
    "configure trust: publish into a repository with a trust root (hepbundle repo init "
    "--policy FILE), set HEPBUNDLE_POLICY=FILE or pass --policy/--key; or ask for integrity "
    "checks only by name (verify='integrity', --integrity-only)"
)


def no_policy_error(what: str) -> PolicyError:
    """The default-deny refusal: nothing says whose signatures to accept for ``what``."""
    return PolicyError(
        f"{what}: no trust policy configured, refusing it (signatures cannot be checked)",
        hint=CONFIGURE_TRUST_HINT,
    )


def resolve_policy(
    policy: Path | None = None,
    *,
    keys: Sequence[Path] = (),
    ca: Sequence[Path] = (),
    subjects: Sequence[str] = (),
    identity: str | None = None,
    issuer: str | None = None,
    trust_config: Path | None = None,
) -> TrustPolicy | None:
    """The trust policy a caller names, by precedence: the ``policy`` file, else the quick
    allowances (``keys``, ``ca``/``subjects``, ``identity``/``issuer``), else
    ``HEPBUNDLE_POLICY``, else None (signatures cannot be judged). Giving both a file and quick
    allowances is an error; ``trust_config`` (a sigstore trusted root) applies to whichever
    policy is chosen. The command line's trust options are exactly these arguments."""
    flags = TrustPolicy.from_flags(
        keys=keys,
        ca=ca,
        subjects=subjects,
        identity=identity,
        issuer=issuer,
        trust_config=trust_config,
    )
    if policy is not None and flags is not None:
        raise SpecError("give either --policy or the quick flags (--key, --ca, --identity)")
    chosen = TrustPolicy.load(policy) if policy is not None else flags or policy_from_env()
    if chosen is not None and trust_config is not None:
        chosen = chosen.using_trust_config(trust_config)
    return chosen
