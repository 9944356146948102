"""Atomic file writes: write beside the target, then rename over it in one step.

A reader (or the next run) sees either the previous complete file or the new complete
file, never a half-written one. :func:`staged_directory` extends this to a set of files:
every file of a run is written into a hidden staging folder beside the output folder and
only moved into place, each by an atomic rename, once all of them were written.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from covplan.errors import CoverageError

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "staged_directory",
]

#: Side files SQLite/GDAL may leave next to a GeoPackage being written.
_SIDECARS = ("-journal", "-wal", "-shm")


def _fsync_dir(folder: Path) -> None:
    """Flush a folder's entries to disk where the platform allows it (not on Windows)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it over ``target``.

    The temporary file has the target's exact name inside a fresh hidden folder in the
    target's folder (same file system, so the final :func:`os.replace` is atomic), which keeps
    format drivers that read the name happy: GDAL picks the driver from the suffix and names
    a GeoPackage's layer after the file stem. If the block raises, the temporary file is
    removed and ``target`` is left exactly as it was.

    Parameters
    ----------
    target
        The final file path. Its folder must exist.

    Yields
    ------
    pathlib.Path
        Where to write. It does not exist when the block starts.

    Raises
    ------
    CoverageError
        If the folder is missing or the block finished without creating the file.

    Examples
    --------
    >>> with atomic_path(folder / "isochrones.gpkg") as tmp:  # doctest: +SKIP
    ...     layer.to_file(tmp, driver="GPKG")
    """
    target = Path(target)
    folder = target.parent
    if not folder.is_dir():
        raise CoverageError(
            f"cannot write {target}: folder {folder} does not exist (create it first)"
        )
    _remove_stale(folder, f".{target.name}.tmp-")  # left by killed writers
    holder = folder / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(6)}"
    holder.mkdir()
    tmp = holder / target.name
    try:
        yield tmp
        if not tmp.is_file():
            raise CoverageError(f"writing {target} produced no file (temporary {tmp} missing)")
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        _fsync_dir(folder)
    finally:
        shutil.rmtree(holder, ignore_errors=True)


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically and return the target path."""
    target = Path(target)
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return target


def atomic_write_text(
    target: str | os.PathLike[str], text: str, *, encoding: str = "utf-8"
) -> Path:
    """Write ``text`` to ``target`` atomically (newlines kept as given) and return the path."""
    return atomic_write_bytes(target, text.encode(encoding))


def _staging_prefix(out_dir: Path) -> str:
    return f".{out_dir.name}.staging-"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _remove_stale_staging(out_dir: Path) -> None:
    """Remove staging folders left by runs that were killed (their process is gone)."""
    _remove_stale(out_dir.parent, _staging_prefix(out_dir))


def _remove_stale(folder: Path, prefix: str) -> None:
    """Remove ``folder/<prefix><pid>-*`` folders whose process no longer exists."""
    for entry in folder.iterdir():
        if not entry.name.startswith(prefix):
            continue
        pid_text = entry.name[len(prefix):].split("-", 1)[0]
        if entry.is_dir() and pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(entry, ignore_errors=True)


@contextlib.contextmanager
def staged_directory(out_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty staging folder beside ``out_dir``; on success move its files into place.

    Every regular file the block leaves in the staging folder is moved into ``out_dir``
    with :func:`os.replace` (atomic per file, same file system because the staging folder
    is a sibling). Nothing is moved if the block raises, so ``out_dir`` keeps the previous
    results. The staging folder is always removed; folders left by killed runs (whose
    process no longer exists) are cleaned at the next call.

    Parameters
    ----------
    out_dir
        The output folder; created (with parents) when missing.

    Yields
    ------
    pathlib.Path
        The staging folder to write into.
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CoverageError(
            f"cannot create output folder {out_dir}: {exc} (choose a writable folder with --out)"
        ) from exc
    if not out_dir.is_dir():
        raise CoverageError(f"output path {out_dir} exists and is not a folder")
    _remove_stale_staging(out_dir)
    staging = Path(
        tempfile.mkdtemp(dir=out_dir.parent, prefix=f"{_staging_prefix(out_dir)}{os.getpid()}-")
    )
    try:
        yield staging
        for item in sorted(staging.iterdir()):
            if item.is_file():
                with open(item, "rb+") as handle:
                    os.fsync(handle.fileno())
        for item in sorted(staging.iterdir()):
            if item.is_file() and not item.name.endswith(_SIDECARS):
                os.replace(item, out_dir / item.name)
        _fsync_dir(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
