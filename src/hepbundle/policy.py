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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ._signers import ParsedSignature, SignatureKind
from ._signers.certificate import CaStore, dn_matches, dn_string, verify_x509
from ._signers.keys import PublicKey, key_id, load_public_key, verify_signature_bytes
from ._yaml import LineMap, load_yaml
from .config import settings
from .errors import PolicyError, SignatureError, SpecError, VerificationError

__all__ = [
    "AllOf",
    "AllowKey",
    "AllowSigstore",
    "AllowX509",
    "AnyOf",
    "Candidate",
    "Rule",
    "SignerInfo",
    "TrustPolicy",
    "policy_from_env",
    "resolve_policy",
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

    def info(self, kind: str, identity: str, **details: Any) -> SignerInfo:
        return SignerInfo(
            kind,
            identity,
            {
                "file": self.sig.name,
                "role": self.role,
                "signedAt": f"{self.signed_at:%Y-%m-%dT%H:%M:%SZ}",
                **details,
            },
        )


class Node(Protocol):
    """A policy expression: returns the signers that satisfy it, or raises VerificationError."""

    def evaluate(self, name: str, candidates: Sequence[Candidate]) -> list[SignerInfo]: ...

    def describe(self) -> str: ...


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
    """A signature by one EC (or RSA) public key."""

    public_key: PublicKey | None = None
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


@dataclass(frozen=True)
class AllowX509(_Leaf):
    """A certificate chaining to ``store`` whose subject DN matches one of ``subjects``."""

    store: CaStore = field(default_factory=CaStore)
    subjects: tuple[str, ...] = ("*",)
    kind: ClassVar[SignatureKind] = "x509"

    def check(self, name: str, c: Candidate) -> SignerInfo:
        leaf = c.sig.chain[0]
        dn = dn_string(leaf.subject)
        if not any(dn_matches(leaf.subject, p) for p in self.subjects):
            raise PolicyError(
                f"signer {dn} ({c.sig.name}) is not allowed to sign {name}; the policy allows "
                f"subjects {', '.join(self.subjects)}"
            )
        verify_x509(c.sig, self.store, c.signed_at)
        return c.info("x509", dn, issuer=dn_string(leaf.issuer))

    def describe(self) -> str:
        return f"x509 {' or '.join(self.subjects)} under {self.store.label}"


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


@dataclass(frozen=True)
class Rule:
    """Bundles whose name matches ``namespace`` must satisfy ``signers``."""

    namespace: str
    signers: Node

    def matches(self, name: str) -> bool:
        target = name if "/" in self.namespace else name.split("/", 1)[0]
        return fnmatch.fnmatchcase(target, self.namespace)


@dataclass(frozen=True)
class TrustPolicy:
    """An ordered list of rules; the first matching one decides."""

    rules: tuple[Rule, ...]
    source: str = "<policy>"

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

    def using_trust_config(self, path: Path) -> TrustPolicy:
        """A copy whose sigstore signers without their own trust root use ``path``."""
        return replace(
            self, rules=tuple(replace(r, signers=_with_root(r.signers, path)) for r in self.rules)
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrustPolicy:
        """Read and validate a policy file; errors name the line and field."""
        from .spec import validate

        p = Path(path)
        data, lines = load_yaml(p, what="trust policy", aliases=False)
        validate(data, "policy.schema.json", filename=str(p), lines=lines)
        base = p.resolve().parent
        rules = tuple(
            Rule(r["namespace"], _node(r["signers"], base, lines, ("rules", i, "signers"), str(p)))
            for i, r in enumerate(data["rules"])
        )
        return cls(rules, source=str(p))

    @classmethod
    def from_flags(
        cls,
        *,
        keys: Sequence[Path] = (),
        ca: Sequence[Path] = (),
        subjects: Sequence[str] = (),
        identity: str | None = None,
        issuer: str | None = None,
        trust_config: Path | None = None,
    ) -> TrustPolicy | None:
        """The one-rule policy of the CLI's quick flags (any of the named signers may sign any
        bundle); None when no flag was given."""
        leaves: list[Node] = [AllowKey(None, public_key=load_public_key(k)) for k in keys]
        if ca or subjects:
            if not ca:
                raise SpecError("--subject needs --ca (the CA certificates or directory to trust)")
            leaves.append(AllowX509(None, store=_store(ca), subjects=tuple(subjects) or ("*",)))
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


def _store(paths: Sequence[Path], crls: Sequence[Path] = ()) -> CaStore:
    files = [p for p in paths if not p.is_dir()]
    dirs = [p for p in paths if p.is_dir()]
    store = CaStore.load(files, dirs[0] if dirs else None, crls)
    for d in dirs[1:]:
        extra = CaStore.load((), d)
        store.cas += extra.cas
        store.crls += extra.crls
        store.label += f", {extra.label}"
    return store


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
            return AllowKey(role, public_key=load_public_key(rel(spec["key"])))
        if "x509" in spec:
            x = spec["x509"]
            paths = [rel(c) for c in as_list(x.get("ca", []))]
            if "ca_dir" in x:
                paths.append(rel(x["ca_dir"]))
            store = _store(paths, [rel(c) for c in as_list(x.get("crl", []))])
            return AllowX509(role, store=store, subjects=tuple(as_list(x.get("subject", "*"))))
        s = spec["sigstore"]
        tc = s.get("trust_config")
        return AllowSigstore(
            role, identity=s["identity"], issuer=s["issuer"], trust_config=rel(tc) if tc else None
        )
    except SpecError as e:
        line = lines.get(where)
        raise SpecError(f"{filename}:{line}: {e.message}" if line else e.message) from None


def policy_from_env() -> TrustPolicy | None:
    """The policy named by ``HEPBUNDLE_POLICY``, or None when it is unset."""
    path = settings().policy_file
    return TrustPolicy.load(path) if path else None


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
