"""Uploaded files of one app session, kept in a private temporary folder.

:class:`UploadStore` owns one folder made with :func:`tempfile.mkdtemp` (mode 0700). Everything
a session uploads is written there and nowhere else:

- file names are reduced to a safe base name (no folders, no ``..``, no drive letters, no
  control characters), and every target path is checked to lie inside the folder;
- each file is checked against a size limit while it is written (by default the loaders' limit
  of :func:`covplan.inputs._io.size_limit`), and is written to a temporary name first and renamed,
  so a refused or interrupted upload leaves nothing behind;
- zip files are unpacked only by :meth:`UploadStore.extract_zip`, which refuses members that
  would land outside the folder (zip-slip: absolute names, ``..``, symbolic links), more than
  :attr:`UploadStore.max_members` members, and archives that unpack to more than
  :attr:`UploadStore.max_unzipped_bytes` (zip bombs; counted on the bytes actually inflated;
  a member inflating to more than its declared size fails its CRC check and is refused);
- :meth:`UploadStore.cleanup` removes the folder; a :func:`weakref.finalize` does the same when
  the store is garbage-collected (the session ended) or the interpreter exits.

Every refusal is a :class:`covplan.errors.CoverageError` saying what, where and how to fix.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import unicodedata
import weakref
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from covplan.errors import CoverageError
from covplan.inputs import _io

__all__ = ["UploadStore", "safe_name"]

#: Longest file name kept (characters, suffix included).
MAX_NAME_CHARS = 120
_CHUNK = 1 << 20


def safe_name(name: str, *, default: str = "upload") -> str:
    r"""Return a file name that cannot leave a folder: the base name, cleaned.

    Both ``/`` and ``\\`` count as separators, a drive prefix (``C:``) is dropped, control
    characters are removed, characters other than letters (any script), digits, ``.``, ``-``,
    ``_`` and space become ``_``, leading dots and spaces are stripped (no hidden files, no
    ``..``), and the name is cut to :data:`MAX_NAME_CHARS` keeping its suffix.

    Examples
    --------
    >>> safe_name("../../etc/passwd")
    'passwd'
    >>> safe_name("C:\\Users\\王\\卫生院名单.csv")
    '卫生院名单.csv'
    """
    text = unicodedata.normalize("NFC", str(name)).replace("\\", "/")
    base = text.rsplit("/", 1)[-1]
    if len(base) > 1 and base[1] == ":":
        base = base[2:]
    cleaned = "".join(
        ch if (ch.isalnum() or ch in "._- ") else "_"
        for ch in base if unicodedata.category(ch)[0] != "C"
    ).strip().lstrip(". ")
    if not cleaned or set(cleaned) <= {"_", "."}:
        cleaned = default
    if len(cleaned) > MAX_NAME_CHARS:
        stem, dot, suffix = cleaned.rpartition(".")
        suffix = suffix[:16] if dot else ""
        keep = MAX_NAME_CHARS - len(suffix) - (1 if suffix else 0)
        cleaned = (stem if dot else cleaned)[:keep] + (f".{suffix}" if suffix else "")
    return cleaned


class UploadStore:
    r"""A per-session temporary folder for uploaded files.

    Parameters
    ----------
    prefix
        Prefix of the folder name made by :func:`tempfile.mkdtemp`.
    root
        Parent folder (default: the system temporary folder).
    max_file_bytes
        Size limit of one saved file; None uses :func:`covplan.inputs._io.size_limit` of the
        ``kind`` given to :meth:`save` (500 MiB for inputs, 2 GiB for road networks, each
        overridable by environment variable).
    max_unzipped_bytes
        Limit of everything one zip unpacks to; None uses the input size limit.
    max_members
        Most members one zip may hold.

    Attributes
    ----------
    path : Path
        The folder (absolute, resolved). It exists until :meth:`cleanup`.

    Examples
    --------
    >>> store = UploadStore()
    >>> p = store.save("../清单.csv", b"id,lon,lat\n")
    >>> p.parent == store.path, p.name
    (True, '清单.csv')
    >>> store.cleanup(); store.path.exists()
    False
    """

    def __init__(
        self,
        *,
        prefix: str = "covplan-upload-",
        root: str | Path | None = None,
        max_file_bytes: int | None = None,
        max_unzipped_bytes: int | None = None,
        max_members: int = 1000,
    ) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=root)).resolve()
        self.max_file_bytes = max_file_bytes
        self.max_unzipped_bytes = max_unzipped_bytes
        self.max_members = max_members
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.path), True)

    # ------------------------------------------------------------------------------- state
    @property
    def alive(self) -> bool:
        """True until the folder has been removed."""
        return self._finalizer.alive

    def cleanup(self) -> None:
        """Remove the folder and everything in it (safe to call twice)."""
        self._finalizer()

    def __enter__(self) -> UploadStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def files(self) -> list[Path]:
        """Every file in the folder, sorted (relative order of the paths)."""
        self._require_alive()
        return sorted(p for p in self.path.rglob("*") if p.is_file())

    def used_bytes(self) -> int:
        """Total size of the files in the folder."""
        return sum(p.stat().st_size for p in self.files())

    # ------------------------------------------------------------------------------- saving
    def limit(self, kind: str = "input") -> int:
        """Return the size limit of one file of ``kind`` (``"input"`` or ``"network"``)."""
        return self.max_file_bytes if self.max_file_bytes is not None else _io.size_limit(kind)

    def save(self, name: str, data: bytes | bytearray | memoryview | BinaryIO, *,
             kind: str = "input") -> Path:
        """Write an uploaded file into the folder under a safe name; return its path.

        Parameters
        ----------
        name
            The name the user's browser sent (any text; reduced by :func:`safe_name`).
        data
            The bytes, or a binary file object read in chunks.
        kind
            ``"input"`` or ``"network"``: which size limit applies.

        Raises
        ------
        CoverageError
            If the file is over the limit (nothing is left in the folder), or the store was
            cleaned up.
        """
        self._require_alive()
        target = self._inside(self.path / safe_name(name))
        limit = self.limit(kind)
        chunks: Iterable[bytes]
        if isinstance(data, (bytes, bytearray, memoryview)):
            if len(data) > limit:
                raise self._too_big(name, len(data), limit, kind)
            chunks = [bytes(data)]
        else:
            chunks = iter(lambda: data.read(_CHUNK), b"")
        self._write(target, chunks, limit=limit,
                    over=lambda n: self._too_big(name, n, limit, kind))
        return target

    def extract_zip(self, source: str | Path, *, folder: str | None = None) -> Path:
        """Unpack a zip (a saved upload, or any zip file) into a sub-folder; return the folder.

        Parameters
        ----------
        source
            The zip file.
        folder
            Name of the sub-folder (made safe); default: the zip's name without ``.zip``.

        Raises
        ------
        CoverageError
            If the file is not a zip, a member would land outside the folder (absolute path,
            ``..``, drive letter, symbolic link), there are more than :attr:`max_members`
            members, or it unpacks to more than the limit. Nothing of a refused zip is left.
        """
        self._require_alive()
        source = Path(source)
        limit = (self.max_unzipped_bytes if self.max_unzipped_bytes is not None
                 else _io.size_limit("input"))
        try:
            zf = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise CoverageError(f"{source.name}: not a readable zip file ({exc}); zip the files "
                                "again") from exc
        with zf:
            infos = zf.infolist()
            self._check_members(source, infos, limit)
            dest = self._inside(self.path / safe_name(folder or source.stem, default="unzipped"))
            if dest.exists():
                shutil.rmtree(dest)
            staging = Path(tempfile.mkdtemp(prefix=".unzip-", dir=self.path))
            try:
                total = [0]
                for info in infos:
                    parts = [p for p in PurePosixPath(info.filename.replace("\\", "/")).parts
                             if p not in ("", ".")]
                    target = self._inside(staging.joinpath(*parts), root=staging)
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as member:
                        self._write(target, iter(lambda m=member: m.read(_CHUNK), b""),
                                    limit=limit, counter=total,
                                    over=lambda n: self._bomb(source, n, limit))
                os.replace(staging, dest)
            except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError,
                    NotImplementedError) as exc:  # damaged, encrypted or unknown compression
                raise CoverageError(f"{source.name}: cannot unpack the zip ({exc}); it is "
                                    "damaged, encrypted or compressed in an unknown way: zip "
                                    "the files again, without a password") from exc
            except OSError as exc:  # e.g. a member named like a folder of another member
                raise CoverageError(f"{source.name}: cannot unpack the zip ({exc}); zip the "
                                    "files of one layer again from their folder") from exc
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return dest

    # ------------------------------------------------------------------------------- checks
    def _require_alive(self) -> None:
        if not self.alive or not self.path.is_dir():
            raise CoverageError(f"the upload folder {self.path} was removed (the session "
                                "ended); upload the files again")

    def _inside(self, target: Path, *, root: Path | None = None) -> Path:
        """Return ``target`` if it lies inside ``root`` (default the store), else raise."""
        root = root or self.path
        resolved = target.resolve()
        if resolved == root or not resolved.is_relative_to(root):
            raise CoverageError(f"refused to write {target}: outside the upload folder {root}")
        return resolved

    def _check_members(self, source: Path, infos: list[zipfile.ZipInfo], limit: int) -> None:
        unsafe = [i.filename for i in infos
                  if _io.unsafe_member(i.filename)
                  or stat.S_ISLNK(i.external_attr >> 16)]
        if unsafe:
            raise CoverageError(
                f"{source.name}: refused, {len(unsafe)} member(s) of the zip would be written "
                f"outside its folder or are links ({_io.list_numbers([repr(n) for n in unsafe])})"
                "; make the zip again from the folder holding the files, without absolute paths, "
                "'..' or links")
        if len(infos) > self.max_members:
            raise CoverageError(f"{source.name}: the zip holds {len(infos)} members, more than "
                                f"{self.max_members}; zip only the files of one layer")
        claimed = sum(i.file_size for i in infos)
        if claimed > limit:
            raise self._bomb(source, claimed, limit)

    def _write(self, target: Path, chunks: Iterable[bytes], *, limit: int,
               over: Callable[[int], CoverageError], counter: list[int] | None = None) -> None:
        """Write chunks to ``target`` through a temporary file, enforcing ``limit``."""
        fd, tmp = tempfile.mkstemp(prefix=".part-", dir=target.parent)
        written = 0
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    written += len(chunk)
                    if counter is not None:
                        counter[0] += len(chunk)
                    seen = counter[0] if counter is not None else written
                    if seen > limit:
                        raise over(seen)
                    fh.write(chunk)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @staticmethod
    def _too_big(name: str, size: int, limit: int, kind: str) -> CoverageError:
        return CoverageError(
            f"{safe_name(name)}: the upload is over the limit of {limit:,} bytes (at least "
            f"{size:,} bytes); cut it to the study area, or ask the administrator to raise "
            f"{_io.SIZE_LIMIT_ENV[kind]}")

    @staticmethod
    def _bomb(source: Path, size: int, limit: int) -> CoverageError:
        return CoverageError(
            f"{source.name}: the zip unpacks to more than the limit of {limit:,} bytes (at "
            f"least {size:,} bytes); zip only the files needed, cut to the study area")
