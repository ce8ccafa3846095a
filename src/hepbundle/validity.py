"""Validity scope: for which data and software a model is valid, and the context a job asks in.

A bundle's manifest may carry a ``validity`` section (``bundle-spec/validity.md``,
``validity.schema.json``): run ranges and time ranges (intervals of validity, IOVs), data-taking
periods, detector/geometry tags, conditions or global tags, software releases (globs such as
``CMSSW_15_0_*``), runtime requirements (``onnxruntime >= 1.18``) and free-form experiment keys.
A job states its :class:`Context` (``run=456789,release=CMSSW_15_0_3``); the resolver refuses a
version whose :class:`Scope` excludes it and, for ``@valid``, picks the newest that covers it.

The rules, one per word:

excludes   some key of the context is restricted by the scope and matches none of its entries
           (every list is "any of", the keys together "all of"); a key the scope does not
           restrict, or the context does not name, is not checked.
covers     not excluded, and at least one key of the context is matched by an entry of the
           scope (what ``@valid`` and ``find --valid-for`` ask: a version without a word about
           the context's keys is never *the* valid one).
"""

from __future__ import annotations

import calendar
import datetime as dt
import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import FormatError, UsageError

__all__ = [
    "CONTEXT_KEYS",
    "Context",
    "Requirement",
    "RunRange",
    "Scope",
    "TimeRange",
    "covers_recorded",
    "glob_prefix",
    "parse_context",
    "plain_times",
]

#: context keys with a meaning of their own; any other key is a runtime (when a requirement
#: names it) or a free-form scope key
CONTEXT_KEYS = ("run", "time", "period", "geometry", "conditions", "release")
#: scope section key → context key, for the tag-like (glob) dimensions
_GLOBS = {"periods": "period", "geometry": "geometry", "conditions": "conditions",
          "releases": "release"}  # fmt: skip
_KEY_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_TIME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2})Z)?$")
_REQ_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.+?)\s*$")
_CLAUSE_RE = re.compile(r"^\s*(==|!=|>=|<=|>|<)\s*([0-9][0-9A-Za-z.+-]*)\s*$")
#: a run range's open end and a time range's open end, in the catalogue index
OPEN_END = 2**62
#: how much of a glob's literal start the catalogue index keeps (:func:`glob_prefix`)
PREFIX_CHARS = 32
_GLOB_START = re.compile(r"[*?\[]")


def _bad(where: str, message: str) -> FormatError:
    return FormatError(f"{where}: {message}")


def parse_time(text: str, where: str) -> int:
    """``YYYY-MM-DD`` (midnight UTC) or ``YYYY-MM-DDTHH:MM:SSZ`` → seconds since the epoch."""
    m = _TIME_RE.match(text) if isinstance(text, str) else None
    if m is None:
        raise _bad(where, f"{text!r} is not a UTC time like 2024-04-01 or 2024-04-01T00:00:00Z")
    try:
        y, mo, d, h, mi, sec = (int(g) if g is not None else 0 for g in m.groups())
        return calendar.timegm(dt.datetime(y, mo, d, h, mi, sec).timetuple())
    except ValueError as e:
        raise _bad(where, f"{text!r} is not a date: {e}") from None


def _normal(text: str) -> str:
    """A release or tag as compared: runs of spaces, ``,`` and ``/`` are one space (asetup writes
    ``Athena,25.0.12``, a person ``Athena 25.0.12``)."""
    return " ".join(re.split(r"[\s,/]+", text.strip()))


def _runtime(key: str) -> str:
    """The runtime a context key names (``onnx_runtime`` → ``onnx-runtime``)."""
    return key.replace("_", "-")


def _version_tuple(text: str) -> tuple[tuple[int, int | str], ...]:
    """``2.16.1-gpu`` → comparable parts (numbers compare as numbers, before words): the order
    of versions PEP 440 cannot read (:meth:`Requirement.admits`)."""
    out: list[tuple[int, int | str]] = []
    for part in re.split(r"[.+-]", text):
        out.append((0, int(part)) if part.isdigit() else (1, part))
    while out and out[-1] == (0, 0):
        out.pop()  # 1.18 == 1.18.0
    return tuple(out)


_OPS = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b,
}  # fmt: skip


@dataclass(frozen=True)
class Requirement:
    """A runtime requirement such as ``onnxruntime >= 1.18, < 2``.

    Judged as a PEP 440 specifier (``packaging.specifiers``) with pre-releases admitted: the
    job's runtime is what it is, so its pre-release is judged by its place in the order (a
    candidate of 1.19 is ``>= 1.18``, one of 1.18 is not), never left out as an installer
    would. PEP 440's own rules then apply: a local label (``+cu121``) is the release it labels
    unless the requirement names one; ``> 1.18`` does not admit 1.18's post-releases, nor
    ``< 2`` 2's pre-releases. A version on either side that PEP 440 cannot read (``2.16.1-gpu``,
    ``6.30/04``) is compared part by part instead, numbers as numbers before words, as before
    PEP 440 was used (bundle-spec/validity.md)."""

    text: str
    name: str
    clauses: tuple[tuple[str, str], ...]
    #: the clauses as a PEP 440 specifier (None: a clause's version is not PEP 440)
    specifier: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str, where: str) -> Requirement:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        m = _REQ_RE.match(text) if isinstance(text, str) else None
        clauses = [_CLAUSE_RE.match(c) for c in m.group(2).split(",")] if m else [None]
        if m is None or any(c is None for c in clauses):
            raise _bad(where, f"{text!r} is not a requirement like 'onnxruntime >= 1.18'")
        name = m.group(1).lower().replace("_", "-")
        pairs = tuple((c.group(1), c.group(2)) for c in clauses if c)
        try:
            spec: SpecifierSet | None = SpecifierSet(",".join(op + v for op, v in pairs))
        except InvalidSpecifier:
            spec = None
        return cls(text, name, pairs, spec)

    def admits(self, version: str) -> bool:
        from packaging.version import InvalidVersion, Version

        if self.specifier is not None:
            try:
                return bool(self.specifier.contains(Version(version), prereleases=True))
            except InvalidVersion:
                pass
        have = _version_tuple(version)
        return all(_OPS[op](have, _version_tuple(v)) for op, v in self.clauses)


@dataclass(frozen=True)
class RunRange:
    """Runs ``first`` to ``last`` inclusive (``last`` None: open-ended)."""

    first: int
    last: int | None = None

    def __contains__(self, run: int) -> bool:
        return self.first <= run and (self.last is None or run <= self.last)

    def __str__(self) -> str:
        return f"{self.first}–{self.last if self.last is not None else '…'}"


@dataclass(frozen=True)
class TimeRange:
    """From ``since`` (included) to ``until`` (excluded; None: open-ended), as written."""

    since: str
    until: str | None = None
    start: int = field(default=0, compare=False)
    end: int | None = field(default=None, compare=False)

    def __contains__(self, t: int) -> bool:
        return self.start <= t and (self.end is None or t < self.end)

    def __str__(self) -> str:
        return f"{self.since} – {self.until or '…'}"


@dataclass(frozen=True)
class Context:
    """What a job says about the data and software it runs on (see :func:`parse_context`)."""

    values: Mapping[str, str] = field(default_factory=dict)
    run: int | None = None
    time: int | None = None

    def __bool__(self) -> bool:
        return bool(self.values)

    def __str__(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.values.items())

    def to_json(self) -> dict[str, str]:
        return dict(self.values)

    def index_probes(self) -> list[tuple[tuple[str, ...], int | None, tuple[str, ...]]]:
        """What the catalogue index looks up for this context, one probe per key: (row keys,
        point, prefixes). A run or time is a point an interval row must contain; any other
        value gives the prefixes a glob row's :func:`glob_prefix` may be (every start of the
        value as :meth:`Scope.covers` compares it, up to :data:`PREFIX_CHARS` characters, ``""``
        included). A key that is not one of :data:`CONTEXT_KEYS` probes itself and the runtime
        of that name (``_`` as ``-``)."""
        probes: list[tuple[tuple[str, ...], int | None, tuple[str, ...]]] = []
        for key, value in self.values.items():
            if key in ("run", "time"):
                probes.append(((key,), self.run if key == "run" else self.time, ()))
                continue
            text = _normal(value) if key in CONTEXT_KEYS else value
            keys = (key,) if key in CONTEXT_KEYS else tuple(dict.fromkeys((key, _runtime(key))))
            starts = tuple(text[:i] for i in range(min(len(text), PREFIX_CHARS) + 1))
            probes.append((keys, None, starts))
        return probes


def parse_context(
    value: Context | Mapping[str, Any] | str | None, *, source: str = "context"
) -> Context:
    """A context from ``run=456789,release=CMSSW_15_0_3`` (the command line's ``--context``,
    ``HEPBUNDLE_CONTEXT``) or a mapping (``hepbundle.resolve(ref, context={"run": 456789})``).
    A malformed one is one :class:`~hepbundle.errors.UsageError` naming the key."""
    if isinstance(value, Context):
        return value
    if value is None:
        return Context()
    pairs: list[tuple[str, Any]]
    if isinstance(value, str):
        pairs = []
        for item in filter(None, (s.strip() for s in value.split(","))):
            key, sep, val = item.partition("=")
            if not sep and pairs:  # a comma inside a value: release=Athena,25.0.12
                pairs[-1] = (pairs[-1][0], f"{pairs[-1][1]},{item}")
                continue
            if not sep:
                raise UsageError(
                    f"{source}: {item!r} is not key=value",
                    hint="write e.g. run=456789,release=CMSSW_15_0_3",
                )
            pairs.append((key.strip(), val.strip()))
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        raise UsageError(f"{source}: a context is key=value text or a mapping, not {value!r}")
    values: dict[str, str] = {}
    run = when = None
    for key, raw in pairs:
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise UsageError(f"{source}: {key!r} is not a context key (lowercase, e.g. run)")
        if key in values:
            raise UsageError(f"{source}: {key} is given twice")
        text = (
            str(raw).strip() if isinstance(raw, (str, int)) and not isinstance(raw, bool) else None
        )
        if not text:
            raise UsageError(f"{source}: {key}={raw!r} has no usable value")
        if key == "run":
            if not (text.isascii() and text.isdigit()):  # '²' and '٢٥٠' are digits to isdigit
                raise UsageError(f"{source}: run={text!r} is not a run number")
            run = int(text)
        elif key == "time":
            try:
                when = parse_time(text, f"{source}: time")
            except FormatError as e:
                raise UsageError(e.message) from None
        values[key] = text
    return Context(values, run, when)


def plain_times(section: Any) -> Any:
    """``section`` with YAML dates and times (``since: 2024-04-01``) as the text the schema
    takes, so an unquoted date in ``hepbundle.yaml`` means what it says."""
    if isinstance(section, dict):
        return {k: plain_times(v) for k, v in section.items()}
    if isinstance(section, list):
        return [plain_times(v) for v in section]
    if isinstance(section, dt.datetime):
        utc = section.astimezone(dt.UTC) if section.tzinfo else section
        return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(section, dt.date):
        return section.isoformat()
    return section


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if (
        not isinstance(items, list)
        or not items
        or not all(isinstance(s, str) and s.strip() for s in items)
    ):
        raise _bad(where, "must be a non-empty string or list of non-empty strings")
    return tuple(items)


@dataclass(frozen=True)
class Scope:
    """A parsed ``validity`` section. Each tuple is "any of"; an empty one restricts nothing."""

    runs: tuple[RunRange, ...] = ()
    times: tuple[TimeRange, ...] = ()
    globs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    runtimes: tuple[Requirement, ...] = ()
    #: free-form experiment keys → glob patterns
    keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, obj: Any, where: str = "validity") -> Scope:
        """Parse a section (spec, manifest or catalogue record); :class:`FormatError` naming
        the field for anything the schema or the ordering rules refuse."""
        if obj is None:
            return cls()
        if not isinstance(obj, Mapping) or not obj:
            raise _bad(where, "must be a mapping with at least one of runs, times, periods, …")
        known = {"runs", "times", "runtimes", "scope", *_GLOBS}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise _bad(f"{where}.{unknown[0]}", f"unknown key (known: {', '.join(sorted(known))})")
        runs = tuple(
            _run_range(r, f"{where}.runs[{i}]") for i, r in enumerate(_list(obj, "runs", where))
        )
        times = tuple(
            _time_range(t, f"{where}.times[{i}]") for i, t in enumerate(_list(obj, "times", where))
        )
        globs = {k: _strings(obj[k], f"{where}.{k}") for k in _GLOBS if k in obj}
        runtimes = tuple(
            Requirement.parse(r, f"{where}.runtimes[{i}]")
            for i, r in enumerate(
                _strings(obj["runtimes"], f"{where}.runtimes") if "runtimes" in obj else ()
            )
        )
        free = obj.get("scope", {})
        if not isinstance(free, Mapping):
            raise _bad(f"{where}.scope", "must be a mapping of key → value or list of values")
        keys: dict[str, tuple[str, ...]] = {}
        for k, v in free.items():
            if not isinstance(k, str) or not _KEY_RE.match(k) or k in CONTEXT_KEYS:
                raise _bad(
                    f"{where}.scope",
                    f"{k!r} is not a free-form key (lowercase, not one of {', '.join(CONTEXT_KEYS)})",
                )
            keys[k] = _strings(v, f"{where}.scope.{k}")
        return cls(runs, times, globs, runtimes, keys)

    @property
    def empty(self) -> bool:
        return not (self.runs or self.times or self.globs or self.runtimes or self.keys)

    def to_json(self) -> dict[str, Any]:
        """The section as the manifest records it (lists everywhere, keys sorted)."""
        out: dict[str, Any] = {}
        if self.runs:
            out["runs"] = [
                {"first": r.first, **({"last": r.last} if r.last is not None else {})}
                for r in self.runs
            ]
        if self.times:
            out["times"] = [
                {"since": t.since, **({"until": t.until} if t.until else {})} for t in self.times
            ]
        for k in _GLOBS:
            if k in self.globs:
                out[k] = list(self.globs[k])
        if self.runtimes:
            out["runtimes"] = [r.text for r in self.runtimes]
        if self.keys:
            out["scope"] = {k: list(v) for k, v in sorted(self.keys.items())}
        return out

    def _checks(self, ctx: Context) -> Iterable[tuple[str, bool]]:
        """(context key, matched) for every key of ``ctx`` this scope restricts."""
        if ctx.run is not None and self.runs:
            yield "run", any(ctx.run in r for r in self.runs)
        if ctx.time is not None and self.times:
            yield "time", any(ctx.time in t for t in self.times)
        for section, key in _GLOBS.items():
            if key in ctx.values and section in self.globs:
                have = _normal(ctx.values[key])
                yield key, any(fnmatch.fnmatchcase(have, _normal(p)) for p in self.globs[section])
        for key, value in ctx.values.items():
            if key in CONTEXT_KEYS:
                continue
            reqs = [r for r in self.runtimes if r.name == _runtime(key)]
            if reqs:
                yield key, all(r.admits(value) for r in reqs)
            elif key in self.keys:
                yield key, any(fnmatch.fnmatchcase(value, p) for p in self.keys[key])

    def excluded_by(self, ctx: Context) -> list[str]:
        """The context keys this scope excludes (empty: the context is admitted)."""
        return [key for key, ok in self._checks(ctx) if not ok]

    def covers(self, ctx: Context) -> bool:
        """Admitted, and at least one key of the context positively matched (module docstring)."""
        checks = list(self._checks(ctx))
        return bool(checks) and all(ok for _, ok in checks)

    def describe(self, keys: Iterable[str] | None = None) -> str:
        """One line a person reads: ``runs 450000–456999; releases CMSSW_15_0_*``, limited to
        the dimensions of ``keys`` (context keys) when given."""
        return "; ".join(f"{dim} {text}" for dim, text in self.rows(keys)) or "no restriction"

    def rows(self, keys: Iterable[str] | None = None) -> list[tuple[str, str]]:
        """(dimension, its entries as text) in the section's order, what ``show`` and the
        catalogue site print; limited to the dimensions of ``keys`` (context keys) when given."""
        want = set(keys) if keys is not None else None

        def on(key: str) -> bool:
            return want is None or key in want

        parts: list[tuple[str, str]] = []
        if self.runs and on("run"):
            parts.append(("runs", ", ".join(map(str, self.runs))))
        if self.times and on("time"):
            parts.append(("times", ", ".join(map(str, self.times))))
        for section, key in _GLOBS.items():
            if section in self.globs and on(key):
                parts.append((section, ", ".join(self.globs[section])))
        reqs = [r.text for r in self.runtimes if on(r.name) or on(r.name.replace("-", "_"))]
        if reqs:
            parts.append(("runtimes", ", ".join(reqs)))
        for k, v in sorted(self.keys.items()):
            if on(k):
                parts.append((k, ", ".join(v)))
        return parts

    def index_rows(self) -> list[tuple[str, int | None, int | None, str | None]]:
        """(key, lo, hi, prefix) rows of the catalogue index (table ``iovs``): a run or time
        interval as integers, inclusive (open end :data:`OPEN_END`), with prefix None; every
        other entry as the literal start of its glob pattern (:func:`glob_prefix`; ``""`` for a
        runtime requirement), with lo and hi None. A version is a candidate for a context when
        a row matches one of :meth:`Context.index_probes`; the candidates are then judged by
        :meth:`covers` (the rows only narrow the search)."""
        rows: list[tuple[str, int | None, int | None, str | None]] = []
        rows += [("run", r.first, OPEN_END if r.last is None else r.last, None) for r in self.runs]
        rows += [
            ("time", t.start, OPEN_END if t.end is None else t.end - 1, None) for t in self.times
        ]
        for section, key in _GLOBS.items():
            rows += [
                (key, None, None, glob_prefix(_normal(p))) for p in self.globs.get(section, ())
            ]
        rows += [(r.name, None, None, "") for r in self.runtimes]
        for k, patterns in self.keys.items():
            rows += [(k, None, None, glob_prefix(p)) for p in patterns]
        return list(dict.fromkeys(rows))


def glob_prefix(pattern: str) -> str:
    """The literal start of a glob (up to its first ``*``, ``?`` or ``[``), at most
    :data:`PREFIX_CHARS` characters: a value the glob matches starts with it."""
    return _GLOB_START.split(pattern, 1)[0][:PREFIX_CHARS]


def covers_recorded(obj: Any, ctx: Context, where: str) -> bool:
    """Whether a recorded ``validity`` section (catalogue record, index) covers ``ctx``; an
    unreadable one never does (what ``@valid`` and ``find --valid-for`` both ask)."""
    try:
        return Scope.from_json(obj, where=where).covers(ctx)
    except FormatError:
        return False


def _list(obj: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = obj.get(key, [])
    if not isinstance(value, list) or (key in obj and not value):
        raise _bad(f"{where}.{key}", "must be a non-empty list")
    return value


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _bad(where, f"{value!r} is not a run number (an integer ≥ 0)")
    return value


def _run_range(obj: Any, where: str) -> RunRange:
    if not isinstance(obj, Mapping) or "first" not in obj or set(obj) - {"first", "last"}:
        raise _bad(where, "a run range is {first: N} or {first: N, last: M}")
    first = _int(obj["first"], f"{where}.first")
    last = _int(obj["last"], f"{where}.last") if obj.get("last") is not None else None
    if last is not None and last < first:
        raise _bad(where, f"last {last} is before first {first}")
    return RunRange(first, last)


def _time_range(obj: Any, where: str) -> TimeRange:
    if not isinstance(obj, Mapping) or "since" not in obj or set(obj) - {"since", "until"}:
        raise _bad(where, "a time range is {since: T} or {since: T, until: T}")
    start = parse_time(obj["since"], f"{where}.since")
    until = obj.get("until")
    end = parse_time(until, f"{where}.until") if until is not None else None
    if end is not None and end <= start:
        raise _bad(where, f"until {until} is not after since {obj['since']}")
    return TimeRange(obj["since"], until, start, end)
