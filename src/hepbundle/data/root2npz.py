"""Convert ROOT TTrees and RNTuples to one NPZ in bounded memory, with a provenance record beside it.

Each input is read with uproot's chunked ``iterate`` of the TTree or RNTuple (one step of at most
``step_size`` in memory), each chunk is appended to :class:`~hepbundle.data._npz.NpzStreamWriter`, and the
inputs are checksummed (adler32 + SHA-256) in a background thread while they are converted.
Inputs are local paths or URLs (``root://``, ``https://``…), which go to uproot untouched; a
``root://`` input's size and adler32 come from the XRootD server (:mod:`hepbundle.remote.xrootd`)
instead of a second read over the network.
Every input is opened and checked (tree, branches, types) before any data is read, so a typo
in the last file fails in seconds, not after an hour.
"""

from __future__ import annotations

import ast
import difflib
import itertools
import operator
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..digest import default_workers
from ..errors import DataError
from ..extras import require
from ..remote.xrootd import is_root_url, remote_options
from ..remote.xrootd import stat as xrootd_stat
from ._npz import NpzStreamWriter
from .npz_provenance import InputRecord, checksum_input, is_url, write_record

__all__ = ["BranchPlan", "Root2NpzResult", "parse_pads", "parse_step_size", "root2npz"]

_STEP_RE = re.compile(r"^\s*\d+(\.\d*)?\s*[kmgt]?i?b\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class BranchPlan:
    """How one branch becomes one NPZ array: dtype, per-row shape, padding of jagged lists."""

    name: str
    dtype: np.dtype[Any]
    inner_shape: tuple[int, ...]
    source_type: str
    pad: int | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "dtype": np.lib.format.dtype_to_descr(self.dtype),
            "shape": list(self.inner_shape),
            "sourceType": self.source_type,
        }
        if self.pad is not None:
            d["pad"] = self.pad
        return d


@dataclass
class Root2NpzResult:
    """What a conversion produced: the NPZ, its provenance record (path and content)."""

    output: Path
    provenance_path: Path
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def entries_out(self) -> int:
        return int(self.record["entries"]["out"])


def parse_step_size(text: str | int) -> str | int:
    """``"100MB"`` / ``"100 MB"`` → uproot's memory size string; a bare integer → entries."""
    if isinstance(text, int) or str(text).strip().isdigit():
        n = int(text)
        if n <= 0:
            raise DataError(f"step size must be positive, not {n}")
        return n
    if not _STEP_RE.match(str(text)):
        raise DataError(
            f"step size {text!r} is not understood",
            hint="use e.g. 100MB, 1GB or a number of entries",
        )
    return str(text).replace(" ", "").upper().replace("IB", "B")


def parse_pads(items: Sequence[str]) -> dict[str, int]:
    """``["jets=4", "mu=2"]`` → ``{"jets": 4, "mu": 2}``."""
    out: dict[str, int] = {}
    for item in items:
        name, sep, n = item.partition("=")
        if not sep or not name or not n.isdigit() or int(n) <= 0:
            raise DataError(f"--pad {item!r} must look like NAME=N with N a positive integer")
        out[name.strip()] = int(n)
    return out


def root2npz(
    inputs: Sequence[str | os.PathLike[str]],
    tree: str,
    branches: Sequence[str],
    out: str | os.PathLike[str],
    *,
    cut: str | None = None,
    step_size: str | int = "100MB",
    pads: Mapping[str, int] | None = None,
    compress: bool = False,
    command: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Root2NpzResult:
    """Convert ``branches`` of ``tree`` in ``inputs`` to ``out`` (.npz) and write
    ``<out>.provenance.json``; returns both paths and the record. Nothing is left under either
    name on failure. ``progress(entries)`` is called after each chunk."""
    uproot = _uproot()
    if not inputs:
        raise DataError("no input files given")
    branches = list(dict.fromkeys(branches))
    if not branches:
        raise DataError("no branches given", hint="use -b a,b,c or --branches-file FILE")
    pads = dict(pads or {})
    unknown_pads = sorted(set(pads) - set(branches))
    if unknown_pads:
        raise DataError(f"--pad names {unknown_pads[0]!r}, which is not among the branches")
    step = parse_step_size(step_size)
    out = Path(out)
    prov_path = out.with_name(out.name + ".provenance.json")
    names = [os.fspath(i) for i in inputs]

    plan: list[BranchPlan] | None = None
    entries_in: list[int] = []
    kinds: list[str] = []
    for name in names:
        with _open_tree(uproot, name, tree) as (t, kind):
            this = _plan(t, kind, name, tree, branches, pads)
            if plan is not None and [p.dtype for p in this] != [p.dtype for p in plan]:
                raise DataError(f"{name}: branch types differ from those of {names[0]}")
            plan = plan or this
            entries_in.append(int(t.num_entries))
            kinds.append(kind)
    assert plan is not None
    if cut is not None and "RNTuple" in kinds:
        _Cut(cut)  # a malformed cut fails before any data is read

    total_in = sum(entries_in)
    # zlib/lz4 release the GIL: decompressing baskets on all cores is where we gain over a
    # plain ``arrays()`` call, at no extra memory (the step size bounds what is read at once)
    inflate = uproot.ThreadPoolExecutor(max_workers=default_workers())
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="hepbundle-adler") as pool,
        NpzStreamWriter(out, compress=compress) as writer,
        _shutdown(inflate),
    ):
        sums: list[Future[InputRecord]] = [pool.submit(checksum_input, n) for n in names]
        for p in plan:
            writer.declare(p.name, p.dtype, p.inner_shape)
        truncated = dict.fromkeys(pads, 0)
        for name in names:
            with _open_tree(uproot, name, tree) as (t, kind):
                for chunk, n_read in _chunks(uproot, t, kind, name, branches, cut, step, inflate):
                    if cut is None and len(chunk) != n_read:
                        # a basket that decompressed to the wrong length (the payload itself is
                        # not checksummed by ROOT: wrong values of the right length go unseen)
                        raise DataError(
                            f"{name}: read {len(chunk)} entries where the tree index says "
                            f"{n_read}: a corrupt basket",
                            hint="it may be truncated or corrupt; copy it again",
                        )
                    for p in plan:
                        arr, cut_off = _to_numpy(chunk[p.name], p)
                        writer.append(p.name, arr)
                        if p.pad is not None:
                            truncated[p.name] += cut_off
                    # drop this step before uproot reads the next: one step in memory, not two
                    del chunk, arr
                    if progress:
                        progress(n_read)
        records = [f.result() for f in sums]
        rows = writer.rows
        digest = writer.finish()
    try:
        record = write_record(
            prov_path,
            output=out,
            output_digest=digest,
            compressed=compress,
            inputs=[
                r.with_entries(tree=tree, kind=k, entries=n)
                for r, k, n in zip(records, kinds, entries_in, strict=True)
            ],
            tree=tree,
            kind=kinds[0] if len(set(kinds)) == 1 else "mixed",
            branches=[
                {**p.to_json(), **({"truncated": truncated[p.name]} if p.pad else {})} for p in plan
            ],
            cut=cut,
            step_size=step,
            entries_in=total_in,
            entries_out=rows[plan[0].name],
            command=list(command) if command is not None else list(sys.argv),
            versions={"uproot": uproot.__version__, "awkward": _ak().__version__},
        )
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return Root2NpzResult(output=out, provenance_path=prov_path, record=record)


@contextmanager
def _shutdown(executor: Any) -> Iterator[None]:
    try:
        yield
    finally:
        executor.shutdown()


#: uproot class name → the object kind recorded in the provenance record
KINDS = {"TTree": "TTree", "ROOT::RNTuple": "RNTuple"}


@contextmanager
def _open_tree(uproot: Any, name: str, tree: str) -> Iterator[tuple[Any, str]]:
    """Open ``name`` and yield its TTree or RNTuple ``tree`` and which of the two it is; every
    failure is a one-line DataError."""
    if not is_url(name) and not Path(name).is_file():
        raise DataError(f"input file {name} does not exist")
    if is_root_url(name):
        xrootd_stat(name, checksum=False)  # a missing file or a dead server: its own one line
    broken = (OSError, ValueError, uproot.deserialization.DeserializationError)
    try:
        f = uproot.open(name, **_open_options(uproot, name))
    except FileNotFoundError:
        raise DataError(f"input file {name} does not exist") from None
    except broken as e:
        raise _corrupt(name, e) from None
    try:
        try:
            found = f.classnames(filter_classname=list(KINDS), cycle=False)
        except broken as e:
            raise _corrupt(name, e) from None
        if tree not in found:
            by_kind = {k: [n for n, c in found.items() if KINDS[c] == k] for k in KINDS.values()}
            present = "; ".join(f"{k}s: {', '.join(v) or '(none)'}" for k, v in by_kind.items())
            raise DataError(
                f"{name} has no TTree or RNTuple {tree!r}{_suggest(tree, list(found))}; {present}"
            )
        yield f[tree], KINDS[found[tree]]
    finally:
        f.close()


def _open_options(uproot: Any, name: str) -> dict[str, Any]:
    """``uproot.open`` options: for root://, a bounded timeout and the XRootD bindings' own
    handler. (uproot's default there, fsspec-xrootd 0.5, fails on the numpy offsets a TTree
    memory-size step makes: "integer argument expected for offset".)"""
    opts = remote_options(name)
    if opts:
        opts["handler"] = uproot.source.xrootd.XRootDSource
    return opts


def _decompression_errors() -> tuple[type[BaseException], ...]:
    """What the codecs raise on a corrupt basket (zlib.error, lzma.LZMAError, cramjam's)."""
    import lzma
    import zlib

    errors: list[type[BaseException]] = [zlib.error, lzma.LZMAError, EOFError]
    try:
        import cramjam

        errors.append(cramjam.DecompressionError)
    except (ImportError, AttributeError):
        pass
    return tuple(errors)


def _corrupt(name: str, e: BaseException) -> DataError:
    # uproot's messages span lines (file, object); one line for the CLI, bounded in length
    first = " ".join(str(e).split())[:200] or type(e).__name__
    return DataError(
        f"{name} is not a readable ROOT file: {first}",
        hint="it may be truncated or corrupt; copy it again",
    )


def _suggest(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _plan(
    t: Any, kind: str, source: str, tree: str, branches: Sequence[str], pads: Mapping[str, int]
) -> list[BranchPlan]:
    available = list(t.keys())
    for b in branches:
        if b not in available:
            what, many = ("branch", "branches") if kind == "TTree" else ("field", "fields")
            raise DataError(
                f"{source}:{tree} has no {what} {b!r}{_suggest(b, available)}; "
                f"{many}: {', '.join(available)}"
            )
    if kind == "RNTuple":
        return [_plan_field(t[b], b, pads) for b in branches]
    return _plan_branches(t, branches, pads)


def _plan_field(field: Any, b: str, pads: Mapping[str, int]) -> BranchPlan:
    """An RNTuple field from its awkward form: a number, a fixed-size array of numbers
    (``std::array``), or a list of numbers (``std::vector``, padded)."""
    forms = require("awkward.forms")
    ListForm, ListOffsetForm = forms.ListForm, forms.ListOffsetForm
    NumpyForm, RegularForm = forms.NumpyForm, forms.RegularForm

    form = field.to_akform()[0].contents[0]
    typename = str(field.typename)
    inner: tuple[int, ...] = ()
    while isinstance(form, RegularForm):  # std::array<T, N>: a fixed shape per entry
        inner, form = (*inner, form.size), form.content
    jagged = isinstance(form, ListOffsetForm | ListForm) and form.parameter("__array__") is None
    if jagged and not inner:
        form = form.content
    if isinstance(form, NumpyForm) and form.parameter("__array__") is None:
        to = np.dtype(form.primitive)
        shape = (*inner, *form.inner_shape)
        if not jagged:
            return BranchPlan(b, to, shape, typename)
        if b not in pads:
            raise DataError(
                f"field {b!r} ({typename}) has a variable length per entry",
                hint=f"pad/truncate it to a fixed length with --pad {b}=N, or leave it out",
            )
        return BranchPlan(b, to, (pads[b], *shape), typename, pad=pads[b])
    raise DataError(
        f"field {b!r} has type {typename or 'record'}, which is not a number or a list of numbers"
    )


def _plan_branches(t: Any, branches: Sequence[str], pads: Mapping[str, int]) -> list[BranchPlan]:
    AsJagged = require("uproot.interpretation.jagged").AsJagged
    AsDtype = require("uproot.interpretation.numerical").AsDtype

    out = []
    for b in branches:
        interp = t[b].interpretation
        typename = str(t[b].typename)
        if isinstance(interp, AsDtype):
            to = np.dtype(interp.to_dtype)
            out.append(BranchPlan(b, to.base, tuple(to.shape), typename))
        elif isinstance(interp, AsJagged) and isinstance(interp.content, AsDtype):
            if b not in pads:
                raise DataError(
                    f"branch {b!r} ({typename}) has a variable length per entry",
                    hint=f"pad/truncate it to a fixed length with --pad {b}=N, or leave it out",
                )
            to = np.dtype(interp.content.to_dtype)
            out.append(BranchPlan(b, to.base, (pads[b], *to.shape), typename, pad=pads[b]))
        else:
            raise DataError(
                f"branch {b!r} has type {typename}, which is not a number or a list of numbers"
            )
    return out


def _chunks(
    uproot: Any,
    t: Any,
    kind: str,
    source: str,
    branches: Sequence[str],
    cut: str | None,
    step: str | int,
    pool: Any,
) -> Any:
    """Yield (chunk, entries read) from one tree, with uproot's errors made one-line."""
    # uproot 5.7 ignores ``cut`` for an RNTuple (without a word): read the names the cut uses
    # and apply it here, with the same expression language
    rn_cut = _Cut(cut) if cut is not None and kind == "RNTuple" else None
    read = list(branches) if rn_cut is None else list(dict.fromkeys([*branches, *rn_cut.names]))
    if kind == "RNTuple":
        it = _rntuple_steps(t, read, step)
    else:
        it = (
            (chunk, int(report.tree_entry_stop - report.tree_entry_start))
            for chunk, report in t.iterate(
                read,
                cut=cut,
                step_size=step,
                library="ak",
                report=True,
                decompression_executor=pool,
            )
        )
    while True:
        try:
            chunk, n = next(it)
        except StopIteration:
            return
        except uproot.KeyInFileError as e:
            raise DataError(f"--cut {cut!r}: unknown name {e.key!r} in {source}") from None
        except SyntaxError:
            raise DataError(f"--cut {cut!r} is not a valid expression") from None
        except (OSError, ValueError, uproot.deserialization.DeserializationError) as e:
            raise _corrupt(source, e) from None
        except _decompression_errors() as e:  # a corrupt zlib/lzma/zstd/lz4 basket
            raise _corrupt(source, e) from None
        if rn_cut is not None:
            chunk = chunk[rn_cut.mask(chunk, source)][list(branches)]
        yield chunk, n
        del chunk  # not kept alive while the next step is read


def _rntuple_steps(t: Any, fields: Sequence[str], step: str | int) -> Iterator[tuple[Any, int]]:
    """(chunk, entries) of an RNTuple in whole clusters of about ``step`` (entries or memory
    size) each. uproot 5.7 reads an RNTuple's pages on one thread (its decompression_executor
    is not used there); the fields are split in groups read on one thread each (zlib/lz4/zstd
    release the GIL), over the same entry range, so one step is in memory, as for a TTree."""
    ak = _ak()
    target = step if isinstance(step, int) else int(t.num_entries_for(step, filter_name=fields))
    target = max(1, target)
    bounds = [0]
    for c in t.cluster_summaries:
        end = int(c.num_first_entry + c.num_entries)
        if end - bounds[-1] >= target or end >= t.num_entries:
            bounds.append(end)
    if bounds[-1] < t.num_entries:  # no clusters listed (empty) or a short last window
        bounds.append(int(t.num_entries))
    n_groups = max(1, min(default_workers(), len(fields)))
    groups = [list(fields[i::n_groups]) for i in range(n_groups)]
    with ThreadPoolExecutor(max_workers=n_groups, thread_name_prefix="hepbundle-rntuple") as pool:
        for lo, hi in itertools.pairwise(bounds):

            def read(group: list[str], lo: int = lo, hi: int = hi) -> Any:
                return t.arrays(group, entry_start=lo, entry_stop=hi, library="ak")

            parts = list(pool.map(read, groups))
            columns = {f: part[f] for part in parts for f in part.fields}
            del parts
            yield ak.zip(columns, depth_limit=1), hi - lo
            del columns


_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
}
_CMPOPS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_UNOPS: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Invert: operator.invert,
    ast.Not: np.logical_not,
}
#: the functions a cut may call (numpy ufuncs; they work on awkward arrays too)
_FUNCS: dict[str, Callable[..., Any]] = {
    f: getattr(np, f)
    for f in (
        "abs", "sqrt", "exp", "log", "log10", "sin", "cos", "tan", "arctan2", "hypot",
        "minimum", "maximum", "where", "isfinite", "isnan",
    )
}  # fmt: skip


class _Cut:
    """A ``--cut`` expression (uproot's Python expression language: arithmetic, comparisons,
    ``&``/``|``/``~``, ``and``/``or``/``not``, numpy functions) evaluated on a chunk's fields.
    A small interpreter over the parsed expression: nothing of Python but these is reachable."""

    def __init__(self, text: str) -> None:
        self.text = text
        try:
            self.tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError:
            raise DataError(f"--cut {text!r} is not a valid expression") from None
        self.names = sorted(
            n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name) and n.id not in _FUNCS
        )

    def mask(self, chunk: Any, source: str) -> Any:
        ak = _ak()
        fields = set(chunk.fields)
        missing = [n for n in self.names if n not in fields]
        if missing:
            raise DataError(f"--cut {self.text!r}: unknown name {missing[0]!r} in {source}")
        got = self._eval(self.tree.body, chunk)
        try:
            mask = np.asarray(ak.to_numpy(got) if isinstance(got, ak.Array) else got)
        except (ValueError, TypeError):
            mask = np.zeros(0)
        if mask.dtype != np.bool_ or mask.shape != (len(chunk),):
            raise DataError(f"--cut {self.text!r} does not give one true/false value per entry")
        return mask

    def _eval(self, node: ast.AST, chunk: Any) -> Any:
        ev = self._eval
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float | bool):
            return node.value
        if isinstance(node, ast.Name):
            return chunk[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left, chunk), ev(node.right, chunk))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNOPS:
            return _UNOPS[type(node.op)](ev(node.operand, chunk))
        if isinstance(node, ast.BoolOp):
            combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            values = [ev(v, chunk) for v in node.values]
            out = values[0]
            for v in values[1:]:
                out = combine(out, v)
            return out
        if isinstance(node, ast.Compare) and all(type(op) in _CMPOPS for op in node.ops):
            left, out = ev(node.left, chunk), None
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = ev(right_node, chunk)
                this = _CMPOPS[type(op)](left, right)
                out = this if out is None else np.logical_and(out, this)
                left = right
            return out
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCS
            and not node.keywords
        ):
            return _FUNCS[node.func.id](*(ev(a, chunk) for a in node.args))
        raise DataError(
            f"--cut {self.text!r}: {ast.unparse(node)!r} is not supported in a cut on an RNTuple",
            hint=f"use field names, numbers, arithmetic, comparisons, &, |, ~ and {', '.join(_FUNCS)}",
        )


def _to_numpy(arr: Any, p: BranchPlan) -> tuple[np.ndarray[Any, Any], int]:
    """One chunk of one branch as a numpy array; for padded branches also how many entries
    were longer than the pad length (their tails are cut)."""
    ak = _ak()
    if p.pad is None:
        return np.asarray(ak.to_numpy(arr)), 0
    longer = int(ak.sum(ak.num(arr, axis=1) > p.pad))
    padded = ak.fill_none(ak.pad_none(arr, p.pad, axis=1, clip=True), 0, axis=1)
    return np.asarray(ak.to_numpy(padded)), longer


def _uproot() -> Any:
    return require("uproot")


def _ak() -> Any:
    return require("awkward")
