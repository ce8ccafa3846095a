"""NPZ files in bounded memory: a writer that appends chunks per array, and a chunked reader.

``np.savez`` needs every array in memory at once. :class:`NpzStreamWriter` instead appends each
chunk's raw bytes to one scratch file per array (next to the output, so the same file system),
and on :meth:`~NpzStreamWriter.finish` — when every array's length is known — writes each zip
member as the ``.npy`` header followed by the scratch bytes copied in 1 MiB blocks. Peak memory
is one chunk plus one copy buffer, whatever the total size; peak disk is about twice the output.
The result is a plain ``.npz`` that ``np.load`` reads. It appears under its final name only
complete (temporary name + rename); a failure removes the scratch files and the partial zip.

:func:`iter_npz_chunks` reads one member back in chunks of rows from the zip stream (stored or
deflated), so profiles and drift checks never load a whole array either.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from ..digest import FileDigest
from ..errors import DataError

__all__ = ["NpzMember", "NpzStreamWriter", "iter_npz_chunks", "member_name", "npz_members"]

_COPY_BLOCK = 1 << 20


_UNSAFE_MEMBER = re.compile(r"[/\\\x00-\x1f\x7f]")


def member_name(name: str) -> str:
    """The zip member name (without ``.npy``) of array ``name``: a branch called
    ``../../evil`` or ``a/b`` must not become a path that an unzip writes outside its directory,
    so separators and control characters become ``_`` and a leading dot is escaped."""
    safe = _UNSAFE_MEMBER.sub("_", name)
    return "_" + safe if safe.startswith(".") or not safe else safe


class NpzStreamWriter:
    """Append row chunks to named arrays; :meth:`finish` assembles the ``.npz`` atomically."""

    def __init__(self, out: str | os.PathLike[str], *, compress: bool = False) -> None:
        self.out = Path(out)
        self.compress = compress
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._scratch = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", dir=self.out.parent))
        self._files: dict[str, IO[bytes]] = {}
        self._dtype: dict[str, np.dtype[Any]] = {}
        self._inner: dict[str, tuple[int, ...]] = {}
        self._rows: dict[str, int] = {}
        self._done = False

    def declare(self, name: str, dtype: npt.DTypeLike, inner_shape: tuple[int, ...] = ()) -> None:
        """Fix the dtype and per-row shape of ``name`` (so an empty selection still writes it)."""
        dt = np.dtype(dtype)
        if dt.byteorder not in "=|":  # ROOT stores big-endian; write native like np.save does
            dt = dt.newbyteorder("=")
        if dt.hasobject:
            raise DataError(f"array {name!r} has object dtype, which NPZ cannot hold portably")
        member = member_name(name)
        clash = [n for n in self._dtype if member_name(n) == member]
        if clash:
            raise DataError(
                f"arrays {clash[0]!r} and {name!r} would both be stored as {member}.npy"
            )
        self._dtype[name] = dt
        self._inner[name] = tuple(inner_shape)
        self._rows[name] = 0
        self._files[name] = open(self._scratch / f"{len(self._files)}.raw", "wb")  # noqa: SIM115

    def append(self, name: str, chunk: npt.NDArray[Any]) -> None:
        """Append rows to ``name`` (declared first, or declared now from this chunk)."""
        if name not in self._files:
            self.declare(name, chunk.dtype, tuple(chunk.shape[1:]))
        if tuple(chunk.shape[1:]) != self._inner[name]:
            raise DataError(
                f"array {name!r}: chunk of row shape {chunk.shape[1:]} does not match "
                f"{self._inner[name]}"
            )
        data = np.ascontiguousarray(chunk, dtype=self._dtype[name])
        if data.size:  # memoryview cannot cast an empty shape; nothing to write anyway
            self._files[name].write(data.data.cast("B"))
        self._rows[name] += int(chunk.shape[0])

    @property
    def rows(self) -> dict[str, int]:
        return dict(self._rows)

    def finish(self) -> FileDigest:
        """Write the zip under a temporary name, rename it to ``out``, remove the scratch files;
        returns the size and SHA-256 of the written NPZ (hashed as it is written)."""
        for f in self._files.values():
            f.close()
        tmp = self._scratch / "out.npz"
        method = zipfile.ZIP_DEFLATED if self.compress else zipfile.ZIP_STORED
        with open(tmp, "wb") as raw_out:
            stream = _HashingStream(raw_out)
            self._write_zip(stream, method)
        os.replace(tmp, self.out)
        self._cleanup()
        self._done = True
        return stream.digest()

    def _write_zip(self, stream: _HashingStream, method: int) -> None:
        with zipfile.ZipFile(stream, "w", method, allowZip64=True) as zf:
            for i, name in enumerate(self._files):
                header = {
                    "descr": np.lib.format.dtype_to_descr(self._dtype[name]),
                    "fortran_order": False,
                    "shape": (self._rows[name], *self._inner[name]),
                }
                with (
                    zf.open(f"{member_name(name)}.npy", "w", force_zip64=True) as member,
                    open(self._scratch / f"{i}.raw", "rb") as raw,
                ):
                    _write_header(member, header)
                    shutil.copyfileobj(raw, member, _COPY_BLOCK)
                os.unlink(self._scratch / f"{i}.raw")

    def abort(self) -> None:
        """Drop everything written so far (nothing appears under the output name)."""
        for f in self._files.values():
            f.close()
        self._cleanup()

    def _cleanup(self) -> None:
        shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> NpzStreamWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            self.abort()


class _HashingStream(io.RawIOBase):
    """A write-only, unseekable file that hashes what passes through it.

    Unseekable on purpose: zipfile then writes each member's sizes and CRC in a data descriptor
    after the data instead of seeking back, so every byte is written once, in order, and the
    NPZ's SHA-256 costs no second read of the output."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self._h = hashlib.sha256()
        self._n = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self._h.update(b)
        n = self._f.write(b)
        self._n += n
        return n

    def tell(self) -> int:
        return self._n

    def flush(self) -> None:
        self._f.flush()

    def digest(self) -> FileDigest:
        return FileDigest(self._n, self._h.hexdigest(), "sha256")


def _write_header(fp: IO[bytes], header: dict[str, Any]) -> None:
    # format 1.0 is what np.save writes for ordinary arrays; 2.0 only when the header is huge
    try:
        np.lib.format.write_array_header_1_0(fp, header)
    except ValueError:
        np.lib.format.write_array_header_2_0(fp, header)


class NpzMember:
    """Name, dtype and shape of one array of an ``.npz``, read from its header only."""

    def __init__(self, name: str, dtype: np.dtype[Any], shape: tuple[int, ...]) -> None:
        self.name = name
        self.dtype = dtype
        self.shape = shape

    def __repr__(self) -> str:
        return f"NpzMember({self.name!r}, {self.dtype}, {self.shape})"


def npz_members(path: str | os.PathLike[str]) -> dict[str, NpzMember]:
    """The arrays of an ``.npz`` by name, without reading their data."""
    out: dict[str, NpzMember] = {}
    with _open_zip(path) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with zf.open(info) as f:
                dtype, shape = _read_header(f, path, info.filename)
            name = info.filename[: -len(".npy")]
            out[name] = NpzMember(name, dtype, shape)
    return out


def iter_npz_chunks(
    path: str | os.PathLike[str], name: str, *, rows: int = 1 << 18
) -> Iterator[npt.NDArray[Any]]:
    """Yield array ``name`` of the ``.npz`` at ``path`` in chunks of at most ``rows`` rows."""
    with _open_zip(path) as zf:
        try:
            f = zf.open(f"{name}.npy")
        except KeyError:
            raise DataError(f"{path} has no array {name!r}") from None
        with f:
            dtype, shape = _read_header(f, path, name)
            row_items = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
            row_bytes = dtype.itemsize * row_items
            left = shape[0] if shape else 1
            while left > 0:
                n = min(rows, left)
                buf = f.read(n * row_bytes)
                if len(buf) != n * row_bytes:
                    raise DataError(f"{path}: array {name!r} is truncated")
                yield np.frombuffer(buf, dtype=dtype).reshape((n, *shape[1:]))
                left -= n


def _open_zip(path: str | os.PathLike[str]) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except zipfile.BadZipFile:
        raise DataError(f"{path} is not an NPZ file (not a zip archive)") from None


def _read_header(
    f: IO[bytes], path: str | os.PathLike[str], name: str
) -> tuple[np.dtype[Any], tuple[int, ...]]:
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    except ValueError as e:
        raise DataError(f"{path}: member {name!r} is not a .npy array: {e}") from None
    if fortran and len(shape) > 1:
        raise DataError(f"{path}: array {name!r} is Fortran-ordered; re-save it in C order")
    if dtype.hasobject:
        raise DataError(
            f"{path}: array {name!r} holds Python objects; hepbundle reads numbers only"
        )
    return dtype, tuple(shape)
