"""All-or-nothing writes: of one file (:func:`atomic_path`) and of a whole output folder.

One file
    :func:`atomic_path` writes beside the target and renames over it in one step: a reader
    sees the previous complete file or the new complete file, never a half-written one.

A whole output folder
    :func:`staged_directory` writes every file of a run into a hidden *sibling* folder
    ``<parent>/.<name>.staging-<pid>-<random>`` (same file system as the target, never a
    temporary folder elsewhere, so the renames below never cross devices) and then replaces
    the output folder **as a whole** by renaming folders, never file by file.

The switch protocol (:func:`switch_directory`)
    0. *Recover* (:func:`recover_output_dir`, run first by :func:`check_output_dir` and
       :func:`staged_directory`): hidden ``.<name>.staging-<pid>-*`` and
       ``.<name>.previous-<pid>-*`` folders of processes that no longer run are left-overs of
       killed runs. If the output folder is missing and such a ``.previous`` folder exists,
       it is renamed back to the output folder; then the remaining left-overs are deleted.
    1. *Check* before anything is replaced (:func:`check_replaceable`): the output folder
       and its parent are writable, and every file the run replaces can be opened for
       writing. A file locked by another program (Excel keeps ``units.xlsx`` locked),
       read-only or immutable stops the run with a :class:`~covplan.errors.CoverageError`
       naming it.
    2. *Write* every file into the staging folder; files of the output folder this run does
       not write (an earlier ``proposals.csv``, notes of the user) are hard-linked into it
       (copied where links are impossible), so they survive the switch unchanged; files and
       folder are flushed to disk (``fsync``).
    3. *Switch*: with no output folder yet, rename staging -> output folder. Otherwise, on
       Linux, ``renameat2(RENAME_EXCHANGE)`` swaps the two folders in one atomic step (the
       previous run then sits under the staging name and is deleted). Elsewhere, or on file
       systems without the exchange: rename output -> ``.<name>.previous-<pid>-<random>``,
       rename staging -> output (if this fails, previous is renamed back and the error
       raised), then delete previous.

Guarantee
    At every moment the output folder's name holds either the complete previous run or the
    complete new run: each step that changes what the name points to is one rename of a
    whole folder, so a reader never sees a mix of two runs and a failed or killed run never
    leaves a half-replaced folder. The one exception is the two-rename switch (no atomic
    exchange): between its two renames the name is briefly *absent* while the complete
    previous run sits in ``.<name>.previous-<pid>-*``; a kill exactly there leaves that
    folder, and the next run (or :func:`recover_output_dir`) renames it back before it does
    anything else. A kill at any other moment leaves only hidden staging or previous folders
    that the next run deletes. Nothing is ever written into the output folder in place.

An output folder at a mount point (weaker guarantee)
    A mount point cannot be renamed, and a sibling folder lies on another file system (the
    rename fails with "Invalid cross-device link"). When the output folder is a mount point
    (:func:`os.path.ismount`, a line of ``/proc/self/mountinfo``, or a device other than its
    parent's), :func:`staged_directory` therefore stages *inside* it, in a hidden
    ``.covplan-staging-<pid>-<random>`` folder (same file system), and moves the files in
    one by one (:func:`_move_in`):

    1. *Check*: every file to replace can be opened for writing and the folder is writable
       (:func:`check_replaceable`), before anything is replaced.
    2. *Journal and back up*: the names to move, and which of them exist, are written to
       ``journal.json`` in the hidden folder; each existing file is hard-linked (copied
       where links are impossible) into its ``previous`` subfolder.
    3. *Move*: each new file replaces its target with :func:`os.replace` (atomic per file),
       ``manifest.json`` last; then the journal is deleted (the run is committed).
    4. *Roll back* on a failure during the moves: the moved files are put back from the
       backups (new names removed) and the error raised; the previous outputs are then
       intact. A kill during the moves leaves the journal; the next run (or
       :func:`recover_output_dir`) rolls back from it before doing anything else.

    The weaker part: each file is replaced atomically, but not the folder as a whole, so a
    reader *during* the moves (a fraction of a second) can see some new and some previous
    files, and so can anyone looking after a kill in that window until the next run rolls
    it back. ``manifest.json`` is moved last and lists the SHA-256 of every file of its run,
    so a manifest whose hashes match the files marks a complete run. Files of the folder the
    run does not write are left in place.

Limits
    Left-overs are recognised by the process id in their name: those of a process that is
    still running (a concurrent run, or a reused id) are left alone until it ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import json
import os
import re
import secrets
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from covplan.errors import CoverageError, InputError, Problem

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_output_dir",
    "check_replaceable",
    "recover_output_dir",
    "staged_directory",
    "switch_directory",
]

#: Side files SQLite/GDAL may leave next to a GeoPackage being written.
_SIDECARS = ("-journal", "-wal", "-shm")

#: ``renameat2`` flag and "relative to the current folder" descriptor (Linux ABI values).
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100

#: A temporary folder of :func:`atomic_path` (``.<name>.tmp-<pid>-<hex>``).
_ATOMIC_TMP = re.compile(r"^\..+\.tmp-\d+-[0-9a-f]+$")

#: The hidden staging folder inside an output folder at a mount point.
_IN_PLACE_PREFIX = ".covplan-staging-"
#: In that folder: the list of files being moved in (present until the run is committed),
#: the new files and the backups of the files they replace.
_JOURNAL = "journal.json"
_NEW = "new"
_BACKUP = "previous"


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


def _remove_stale(folder: Path, prefix: str) -> None:
    """Remove ``folder/<prefix><pid>-*`` folders whose process no longer exists."""
    for entry in _stale(folder, prefix):
        shutil.rmtree(entry, ignore_errors=True)


def _stale(folder: Path, prefix: str) -> list[Path]:
    """Return the ``folder/<prefix><pid>-*`` folders whose process no longer exists."""
    found = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        pid_text = entry.name[len(prefix):].split("-", 1)[0]
        if (entry.is_dir() and not entry.is_symlink() and pid_text.isdigit()
                and not _pid_alive(int(pid_text))):
            found.append(entry)
    return found


def _staging_prefix(out_dir: Path) -> str:
    return f".{out_dir.name}.staging-"


def _previous_prefix(out_dir: Path) -> str:
    return f".{out_dir.name}.previous-"


def _sibling(out_dir: Path, prefix: str) -> Path:
    """Create and return a new empty folder ``<parent>/<prefix><pid>-<random>``."""
    while True:
        path = out_dir.parent / f"{prefix}{os.getpid()}-{secrets.token_hex(6)}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise CoverageError(
                f"cannot create the staging folder {path}: {exc.strerror or exc} (the folder "
                f"{out_dir.parent} must be writable; choose another output folder)"
            ) from exc
        return path


def recover_output_dir(out_dir: str | os.PathLike[str]) -> Path | None:
    """Restore or clean what killed runs left beside ``out_dir``; return a restored folder.

    If ``out_dir`` is missing and a ``.<name>.previous-<pid>-*`` folder of a process that no
    longer runs exists (a run killed between the two renames of the switch), the newest is
    renamed back to ``out_dir``. Then the staging and previous folders of dead processes are
    deleted. Folders of live processes are left alone.

    Parameters
    ----------
    out_dir
        The output folder.

    Returns
    -------
    pathlib.Path or None
        The ``.previous`` folder that was renamed back to ``out_dir``, or None.
    """
    out_dir = Path(out_dir)
    if not out_dir.parent.is_dir():
        return None
    restored = None
    previous = _stale(out_dir.parent, _previous_prefix(out_dir))
    if previous and not os.path.lexists(out_dir):
        newest = max(previous, key=lambda p: p.stat().st_ctime_ns)
        try:
            os.rename(newest, out_dir)
        except OSError as exc:
            raise CoverageError(
                f"the output folder {out_dir} is missing and the previous run is kept in "
                f"{newest}, which could not be renamed back ({exc.strerror or exc}); rename "
                f"it to {out_dir.name} by hand"
            ) from exc
        _fsync_dir(out_dir.parent)
        restored = newest
        previous.remove(newest)
    for folder in previous + _stale(out_dir.parent, _staging_prefix(out_dir)):
        shutil.rmtree(folder, ignore_errors=True)
    if out_dir.is_dir() and not out_dir.is_symlink():
        for holder in _stale(out_dir, _IN_PLACE_PREFIX):
            _roll_back_journal(out_dir, holder)
            shutil.rmtree(holder, ignore_errors=True)
    return restored


def _mount_points() -> frozenset[str]:
    """Return the mount points of this process (Linux ``/proc/self/mountinfo``), else empty.

    A bind mount of a folder of the same file system has its parent's device number, so
    neither :func:`os.path.ismount` nor a device comparison sees it; the mount table does.
    """
    try:
        text = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    found = set()
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) > 4:  # octal escapes (\040 for a space) in the mount point field
            found.add(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4]))
    return frozenset(found)


def _is_mount(out_dir: Path) -> bool:
    """Tell whether the folder ``out_dir`` is a mount point or on another device than its parent."""
    try:
        out_dir = Path(os.path.realpath(out_dir))
        return (os.path.ismount(out_dir)
                or out_dir.stat().st_dev != out_dir.parent.stat().st_dev
                or str(out_dir) in _mount_points())
    except OSError:
        return False


def _stages_in_place(out_dir: Path) -> bool:
    """Tell whether ``out_dir`` is an existing folder at a mount point (staged inside it)."""
    return out_dir.is_dir() and _is_mount(out_dir)


def _in_place_holder(out_dir: Path) -> Path:
    """Create and return a new empty ``out_dir/.covplan-staging-<pid>-<random>`` folder."""
    while True:
        path = out_dir / f"{_IN_PLACE_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise CoverageError(
                f"cannot create the staging folder {path}: {exc.strerror or exc} (the output "
                f"folder {out_dir} must be writable; choose another output folder)"
            ) from exc
        (path / _NEW).mkdir()
        (path / _BACKUP).mkdir()
        return path


def _write_journal(holder: Path, names: list[str], existing: list[str]) -> None:
    """Write ``journal.json`` (names to move, those that exist) atomically into ``holder``."""
    tmp = holder / f"{_JOURNAL}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump({"names": names, "existing": existing}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, holder / _JOURNAL)
    _fsync_dir(holder)


def _restore(out_dir: Path, holder: Path, names: Iterable[str], existing: set[str]) -> list[str]:
    """Put ``names`` back as they were before the moves; return the names that failed.

    A name that existed is renamed back from its backup; a new name is removed if its new
    file was moved in (it is no longer in the ``new`` subfolder).
    """
    failed = []
    for name in names:
        target, backup = out_dir / name, holder / _BACKUP / name
        try:
            if name in existing:
                if os.path.lexists(backup):
                    os.replace(backup, target)  # same file (not yet replaced): no change
            elif not os.path.lexists(holder / _NEW / name) and os.path.lexists(target):
                os.unlink(target)
        except OSError:
            failed.append(name)
    _fsync_dir(out_dir)
    return failed


def _roll_back_journal(out_dir: Path, holder: Path) -> None:
    """Undo the moves of a killed in-place run from its journal (no journal: nothing moved)."""
    try:
        journal = json.loads((holder / _JOURNAL).read_text(encoding="utf-8"))
        names = [str(n) for n in journal["names"]]
        existing = {str(n) for n in journal["existing"]}
    except (OSError, ValueError, KeyError, TypeError):
        return  # no journal: killed before the moves began, or after the run was committed
    if any(Path(n).name != n for n in names):
        return  # not a journal this module wrote
    failed = _restore(out_dir, holder, names, existing)
    if failed:
        raise CoverageError(
            f"a killed run left {out_dir} half replaced and {', '.join(failed)} could not be "
            f"restored from the backups in {holder / _BACKUP}; copy them back by hand"
        )


def _move_in(staging: Path, out_dir: Path, holder: Path) -> None:
    """Move every file of ``staging`` into ``out_dir`` (manifest.json last), or none.

    See "An output folder at a mount point" in the module docstring.

    Raises
    ------
    CoverageError
        If a move fails; the moved files were put back and ``out_dir`` holds the previous
        outputs (or, if that failed too, the message names the backup folder).
    """
    names = sorted((p.name for p in staging.iterdir()), key=lambda n: (n == "manifest.json", n))
    existing = [n for n in names if os.path.lexists(out_dir / n)]
    _write_journal(holder, names, existing)
    backups = holder / _BACKUP
    for name in existing:
        _link_or_copy(str(out_dir / name), str(backups / name))
    _fsync_dir(backups)
    moved: list[str] = []
    try:
        for name in names:
            os.replace(staging / name, out_dir / name)
            moved.append(name)
        _fsync_dir(out_dir)
    except BaseException as exc:
        failed = _restore(out_dir, holder, moved, set(existing))
        if failed:
            with contextlib.suppress(OSError):  # keep the backups out of the clean-up
                holder.rename(holder.with_name(
                    holder.name.replace(_IN_PLACE_PREFIX, ".covplan-kept-")))
            raise CoverageError(
                f"moving the new outputs into {out_dir} failed ({exc}) and "
                f"{', '.join(failed)} could not be restored; the previous files are kept in "
                f"{out_dir}/.covplan-kept-*/{_BACKUP}; copy them back by hand"
            ) from exc
        if not isinstance(exc, OSError):
            raise
        named = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        raise CoverageError(
            f"cannot replace the files of the output folder {out_dir}: "
            f"{exc.strerror or exc}{named}; a file in it may be open in another program "
            "(close it) or read-only; the previous outputs were left unchanged"
        ) from exc
    (holder / _JOURNAL).unlink()  # committed: a kill from here on keeps the new run
    _fsync_dir(holder)


def _check_folder(out_dir: Path) -> None:
    """Refuse an output path that is not a folder."""
    if os.path.lexists(out_dir) and not out_dir.is_dir():
        raise CoverageError(
            f"output path {out_dir} exists and is not a folder (choose a folder with --out "
            "or outputs.dir)"
        )


def check_replaceable(out_dir: str | os.PathLike[str], names: Iterable[str] = ()) -> None:
    """Check that a run could replace ``out_dir`` and its files ``names``; change nothing.

    Parameters
    ----------
    out_dir
        The output folder (it may not exist yet).
    names
        File names in ``out_dir`` the run replaces.

    Raises
    ------
    CoverageError
        Naming the folder or file that cannot be replaced: the folder or its parent is not
        writable, or a file cannot be opened for writing (locked by another program such
        as Excel, read-only, immutable) or is a folder.
    """
    out_dir = Path(out_dir)
    _check_folder(out_dir)
    parent = out_dir.parent
    in_place = _stages_in_place(out_dir)  # at a mount point: the parent is not written
    if not in_place and parent.is_dir() and not os.access(parent, os.W_OK):
        raise CoverageError(
            f"cannot write the output folder {out_dir}: its parent {parent} is not writable "
            "(choose another output folder)"
        )
    if not out_dir.is_dir():
        return
    if not os.access(out_dir, os.W_OK):
        raise CoverageError(
            f"cannot replace the output folder {out_dir}: it is not writable (read-only or "
            "locked); make it writable or choose another output folder"
        )
    for name in names:
        path = out_dir / name
        if path.is_dir():
            raise CoverageError(
                f"cannot replace {path}: it is a folder (move it away or choose another "
                "output folder)"
            )
        if not path.is_file():
            continue
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError as exc:
            raise CoverageError(
                f"cannot replace {path}: {exc.strerror or exc} (it is open in another "
                "program, read-only or locked; close it, e.g. in Excel, or make it writable, "
                "then rerun; the previous outputs were left unchanged)"
            ) from exc
        os.close(fd)


def _input_items(input_paths: Mapping[str, object] | Iterable[object]
                 ) -> list[tuple[str, Path]]:
    """Return ``(label, path)`` of every input given as a path (URLs and None skipped)."""
    items = (((f"{role} input", p) for role, p in input_paths.items())
             if isinstance(input_paths, Mapping) else (("input", p) for p in input_paths))
    found = []
    for role, value in items:
        if isinstance(value, Mapping):
            value = value.get("path")
        if value is None or (isinstance(value, str) and "://" in value):
            continue
        if isinstance(value, str | os.PathLike):
            found.append((str(role), Path(value).expanduser()))
    return found


def _resolved(path: Path, what: str) -> Path:
    """Return ``path`` resolved; a symbolic link loop is an :class:`InputError`."""
    try:
        return path.resolve()
    except (RuntimeError, OSError) as exc:  # RuntimeError before Python 3.13, then ELOOP
        if isinstance(exc, OSError) and exc.errno != errno.ELOOP:
            raise
        raise InputError([Problem(
            f"{what} {path}",
            "is a symbolic link loop: the link points, directly or through other links, "
            "back to itself",
            "replace the link by a folder or point it to an existing one",
        )], source=f"the {what}") from exc


def check_output_dir(
    out_dir: str | os.PathLike[str],
    input_paths: Mapping[str, object] | Iterable[object] = (),
    *,
    replaces: Iterable[str] = (),
    recover: bool = True,
) -> Path:
    """Check an output folder before anything is computed; return it resolved.

    Parameters
    ----------
    out_dir
        The output folder.
    input_paths
        The run's inputs: ``{role: path}`` (a value may also be ``{"path": ...}``, as in a
        run manifest's ``inputs``) or a list of paths. None and URLs are skipped.
    replaces
        File names the run will replace (checked with :func:`check_replaceable`).
    recover
        First restore or clean what killed runs left (:func:`recover_output_dir`).

    Returns
    -------
    pathlib.Path
        ``out_dir``, absolute with links resolved.

    Raises
    ------
    InputError
        If the output folder is, or contains, an input file or folder: replacing the
        folder would replace the input.
    CoverageError
        If the output path is a file, or cannot be replaced.
    """
    out = _resolved(Path(out_dir).expanduser(), "output folder")
    problems = []
    for role, path in _input_items(input_paths):
        resolved = _resolved(path, role)
        if resolved == out or out in resolved.parents:
            how = "is" if resolved == out else "contains"
            problems.append(Problem(
                f"output folder {out}",
                f"it {how} the {role} {resolved}; the outputs replace the whole folder, "
                "which would replace or delete the input",
                "choose an output folder that holds no input, e.g. a new folder "
                f"{out / 'out'} or set --out / outputs.dir",
            ))
    if problems:
        raise InputError(problems, source="the output folder")
    if recover:
        recover_output_dir(out)
    check_replaceable(out, replaces)
    return out


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    """Return the C library's ``renameat2`` (Linux, glibc 2.28+), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        func = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                     ctypes.c_uint]
    func.restype = ctypes.c_int
    return func  # type: ignore[no-any-return]


def _exchange(a: Path, b: Path) -> bool:
    """Swap folders ``a`` and ``b`` in one atomic step; False where that is unsupported."""
    func = _renameat2()
    if func is None:
        return False
    if func(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False  # a file system or kernel without the exchange: use two renames
    raise OSError(code, os.strerror(code), str(b))


def switch_directory(staging: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> None:
    """Replace folder ``out_dir`` by folder ``staging`` (a sibling) as a whole.

    See the module docstring for the protocol and its guarantee.

    Raises
    ------
    CoverageError
        If a rename fails; ``out_dir`` then still holds the previous run.
    """
    staging, out_dir = Path(staging), Path(out_dir)
    where = out_dir.parent
    try:
        if not os.path.lexists(out_dir):
            os.rename(staging, out_dir)
        elif _exchange(staging, out_dir):
            _fsync_dir(where)
            shutil.rmtree(staging, ignore_errors=True)  # now the previous run
        else:
            previous = where / f"{_previous_prefix(out_dir)}{os.getpid()}-{secrets.token_hex(6)}"
            os.rename(out_dir, previous)
            try:
                os.rename(staging, out_dir)
            except BaseException:
                try:
                    os.rename(previous, out_dir)
                except OSError as exc:
                    raise CoverageError(
                        f"the previous outputs are kept in {previous} and could not be moved "
                        f"back to {out_dir} ({exc.strerror or exc}); rename the folder by "
                        "hand (the next run also does)"
                    ) from exc
                raise
            _fsync_dir(where)
            shutil.rmtree(previous, ignore_errors=True)
    except OSError as exc:
        named = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        raise CoverageError(
            f"cannot replace the output folder {out_dir}: {exc.strerror or exc}{named}; a "
            "file in it may be open in another program (close it) or the folder is "
            "read-only; the previous outputs were left unchanged"
        ) from exc
    _fsync_dir(where)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)


def _carry_over(out_dir: Path, staging: Path) -> None:
    """Link into ``staging`` every entry of ``out_dir`` this run did not write."""
    written = {p.name for p in staging.iterdir()}
    skip = written | {name + s for name in written for s in _SIDECARS}
    for entry in out_dir.iterdir():
        if (entry.name in skip or _ATOMIC_TMP.match(entry.name)
                or entry.name.startswith(_IN_PLACE_PREFIX)):
            continue
        dest = staging / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(entry), dest)
        elif entry.is_dir():
            shutil.copytree(entry, dest, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(str(entry), str(dest))


def _fsync_tree(folder: Path) -> None:
    for item in folder.rglob("*"):
        if item.is_file() and not item.is_symlink():
            with contextlib.suppress(OSError), open(item, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(folder)


@contextlib.contextmanager
def staged_directory(
    out_dir: str | os.PathLike[str],
    *,
    replaces: Iterable[str] = (),
) -> Iterator[Path]:
    """Yield an empty staging folder beside ``out_dir``; on success it replaces ``out_dir``.

    What killed runs left is restored or cleaned first (:func:`recover_output_dir`) and
    the folder is checked (:func:`check_replaceable`, for ``replaces`` and again for every
    file written). On success, the files of ``out_dir`` the block did not write are linked
    into the staging folder, which then replaces ``out_dir`` as a whole
    (:func:`switch_directory`). If the block raises, ``out_dir`` is left exactly as it was.
    The staging folder is always removed.

    An output folder at a mount point is staged inside it instead (a hidden
    ``.covplan-staging-*`` folder) and its files are replaced one by one with backups and
    roll-back, ``manifest.json`` last: a weaker guarantee, see "An output folder at a mount
    point" in the module docstring.

    Parameters
    ----------
    out_dir
        The output folder; its parent folders are created when missing. If it is a
        symbolic link, the folder it points to is replaced (the link stays).
    replaces
        File names the block will write, checked before it starts.

    Yields
    ------
    pathlib.Path
        The staging folder to write into.

    Raises
    ------
    CoverageError
        If the output path is a file, a file to replace is locked, or the switch or the
        moves fail (``out_dir`` then holds the previous run).
    """
    out_dir = Path(os.path.realpath(Path(out_dir).expanduser()))  # a link: replace its target
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CoverageError(
            f"cannot create output folder {out_dir}: {exc} (choose a writable folder with --out)"
        ) from exc
    recover_output_dir(out_dir)
    check_replaceable(out_dir, replaces)
    in_place = _stages_in_place(out_dir)
    holder = _in_place_holder(out_dir) if in_place else _sibling(out_dir, _staging_prefix(out_dir))
    staging = holder / _NEW if in_place else holder
    try:
        yield staging
        for item in list(staging.iterdir()):
            base = next((item.name[: -len(s)] for s in _SIDECARS if item.name.endswith(s)), None)
            if base and (staging / base).is_file() and item.is_file():
                item.unlink()  # a GeoPackage's left-over journal
        check_replaceable(out_dir, [p.name for p in staging.iterdir()])
        if in_place:
            _fsync_tree(staging)
            _move_in(staging, out_dir, holder)
            return
        if out_dir.is_dir():
            _carry_over(out_dir, staging)
            shutil.copymode(out_dir, staging)
        _fsync_tree(staging)
        switch_directory(staging, out_dir)
    finally:
        shutil.rmtree(holder, ignore_errors=True)
