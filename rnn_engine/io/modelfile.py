"""The on-disk model format: one directory per model holding weights.npz, manifest.json and history.json.

Layout of `<parent>/<name>/`:
    weights.npz    the arrays, an uncompressed NumPy .npz (one .npy per array, written without pickle)
    manifest.json  task-specific metadata plus "format_version" (FORMAT_VERSION)
    history.json   a list of per-epoch dicts (may be empty)

Atomic saves: everything is written and fsynced in a hidden sibling `.<name>.tmp-<random>`, which is then
renamed into place. Replacing an existing model swaps the two directories in one step on Linux
(renameat2 RENAME_EXCHANGE), then removes the old one, so readers always find a complete model. Where that
is unsupported it renames the old one to `.<name>.old-<random>`, renames the new one in, fsyncs the parent
and removes the old one. A crash therefore leaves either the old or the new complete model under `<name>`,
except (fallback only) in the instant between the two renames, when only `.<name>.old-*` exists:
`cleanup_partial(parent)` (call it at start-up) puts that back and deletes leftover temp dirs; a save holds
an flock on its temp dir (and on the `.old-*` dir) while it runs, and clean-up skips locked entries, so
processes sharing the directory never remove each other's saves in progress. Hidden entries are never listed
or loaded. Concurrent saves to one name must be serialised by callers.

Names are validated (`validate_model_name`) before any path is built from them, and symlinks are refused, so
nothing outside the parent directory is read or written.

Over 350 lines on purpose: the save and the load are one contract (every check on load answers a step of the
save: names, format version, array dtypes, the atomic swap and its leftovers), so they stay in one file.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import secrets
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IncompatibleModel, InvalidInput, NotFound
from ..validate import is_int
from . import filelock

FORMAT_VERSION = 1
WEIGHTS, MANIFEST, HISTORY = "weights.npz", "manifest.json", "history.json"
NAME_PATTERN = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,63}")
ARRAY_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{1,200}")

__all__ = ["FORMAT_VERSION", "save_model_dir", "load_model_dir", "list_model_dirs", "cleanup_partial",
           "validate_model_name", "model_path"]


def validate_model_name(name: Any) -> str:
    """Return `name` if it is 1..64 of [A-Za-z0-9._-], not starting with '.'; else raise InvalidInput."""
    if not isinstance(name, str):
        raise InvalidInput(f"model name: expected a str, got {type(name).__name__}", field="name")
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"model name: expected 1-64 characters from letters, digits, '-', '_', '.' "
            f"not starting with '.', "
            f"got {name!r}",
            field="name",
        )
    return name


def model_path(parent: Path | str, name: str) -> Path:
    """`parent / name` for a validated name (the only way paths are built from names)."""
    return Path(parent) / validate_model_name(name)


# ---------------------------------------------------------------------------------------------- writing
def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _check_arrays(arrays: Any) -> dict[str, np.ndarray]:
    if not isinstance(arrays, dict):
        raise InvalidInput(
            f"arrays: expected a dict of name -> ndarray, got {type(arrays).__name__}",
            field="arrays",
        )
    out = {}
    for key, value in arrays.items():
        if not isinstance(key, str) or not ARRAY_NAME_PATTERN.fullmatch(key):
            raise InvalidInput(
                f"arrays: expected names of letters, digits, '._-', got {key!r}",
                field="arrays",
            )
        if not isinstance(value, np.ndarray):
            raise InvalidInput(
                f"arrays[{key!r}]: expected a numpy ndarray, got {type(value).__name__}",
                field=f"arrays[{key!r}]",
            )
        if value.dtype.hasobject:
            raise InvalidInput(
                f"arrays[{key!r}]: expected a numeric dtype, got {value.dtype} (no pickling)",
                field=f"arrays[{key!r}]",
            )
        out[key] = value
    return out


def _json_bytes(name: str, value: Any) -> bytes:
    try:
        return json.dumps(value, indent=2, sort_keys=True).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name}: expected JSON-serialisable data, got {exc}", field=name) from exc


def _write_weights(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Same container as np.savez (uncompressed zip of .npy files), written with allow_pickle=False."""
    with open(path, "xb") as raw:
        with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for key, value in arrays.items():
                with zf.open(key + ".npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, value, allow_pickle=False)
        raw.flush()
        os.fsync(raw.fileno())


def save_model_dir(
    directory: Path | str,
    arrays: dict[str, np.ndarray],
    manifest: dict,
    history: list[dict] | None = None,
) -> Path:
    """Atomically write (or replace) the model directory `directory` and return its path.

    Args:
        directory: `<parent>/<name>`; the name is validated, the parent is created if missing.
        arrays: name -> ndarray (numeric dtypes only); names like "rnn.weight_ih_l0".
        manifest: JSON-able dict; "format_version" is set to FORMAT_VERSION.
        history: JSON-able list of dicts (default []).
    """
    directory = Path(directory)
    name = validate_model_name(directory.name)
    parent = directory.parent
    arrays = _check_arrays(arrays)
    if not isinstance(manifest, dict):
        raise InvalidInput(f"manifest: expected a dict, got {type(manifest).__name__}", field="manifest")
    history = [] if history is None else history
    if not isinstance(history, list):
        raise InvalidInput(
            f"history: expected a list of dicts or None, got {type(history).__name__}",
            field="history",
        )
    manifest_bytes = _json_bytes("manifest", {**manifest, "format_version": FORMAT_VERSION})
    history_bytes = _json_bytes("history", history)
    if directory.is_symlink():
        raise InvalidInput(
            f"model directory {str(directory)!r} is a symlink; refusing to replace it", field="directory"
        )

    parent.mkdir(parents=True, exist_ok=True)
    tmp, lock = _locked_tmp_dir(parent, name)
    try:
        _write_weights(tmp / WEIGHTS, arrays)
        _write_file(tmp / MANIFEST, manifest_bytes)
        _write_file(tmp / HISTORY, history_bytes)
        _fsync_dir(tmp)
        _swap_in(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        filelock.unlock(lock)
    return directory


def _locked_tmp_dir(parent: Path, name: str) -> tuple[Path, int]:
    """A new `.<name>.tmp-<random>` dir, flocked so another process's `cleanup_partial` leaves it alone."""
    for _ in range(20):
        tmp = parent / f".{name}.tmp-{secrets.token_hex(6)}"
        tmp.mkdir()
        lock = filelock.lock_fresh(tmp)
        if lock is not None:
            return tmp, lock
    raise OSError(errno.EAGAIN, "could not lock a fresh temp dir (clean-up running in a loop?)", str(parent))


def _load_renameat2():
    try:
        return ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError, TypeError):
        return None


_RENAMEAT2 = _load_renameat2()
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap_in(tmp: Path, directory: Path) -> None:
    """Move the complete model `tmp` to `directory`, replacing any model there.

    Replacement swaps the two directories in one atomic step where the OS can (readers never see the name
    missing); elsewhere it renames the old one aside first (the window `cleanup_partial` repairs).
    """
    parent = directory.parent
    if not directory.exists():
        os.rename(tmp, directory)
        _fsync_dir(parent)
        return
    if _exchange(tmp, directory):
        _fsync_dir(parent)
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old model
        return
    old = parent / f".{directory.name}.old-{secrets.token_hex(6)}"
    lock = filelock.try_lock(directory)  # held while it is `.old-*`: cleanup_partial must not restore it then
    try:
        os.rename(directory, old)
        try:
            os.rename(tmp, directory)
        except BaseException:
            os.rename(old, directory)  # put the old model back before reporting the failure
            raise
        _fsync_dir(parent)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        filelock.unlock(lock)


def cleanup_partial(parent: Path | str) -> list[str]:
    """Repair `parent` after a crash: restore `.<name>.old-*` when `<name>` is missing, delete temp dirs.

    Returns the hidden entries it removed or restored. Entries locked by a save in progress (in this or
    another process sharing the directory) are skipped, so it is safe while other servers save.
    """
    parent = Path(parent)
    if not parent.is_dir():
        return []
    touched = []
    pattern = re.compile(r"\.(?P<name>.+)\.(?P<what>tmp|old)-[0-9a-f]+")
    for entry in sorted(parent.iterdir()):
        match = pattern.fullmatch(entry.name)
        if not match or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            target = model_path(parent, match["name"])
        except InvalidInput:
            continue
        lock = filelock.lock_fresh(entry)
        if lock is None:  # a save in progress holds it (or it just went away)
            continue
        try:
            if match["what"] == "old" and not target.exists() and not target.is_symlink():
                os.rename(entry, target)
            else:
                shutil.rmtree(entry, ignore_errors=True)
        finally:
            filelock.unlock(lock)
        touched.append(entry.name)
    if touched:
        _fsync_dir(parent)
    return touched


# ---------------------------------------------------------------------------------------------- reading
def _open_regular(path: Path, what: str):
    """Open a regular file for reading without following symlinks; NotFound if missing."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise NotFound(f"{what}: {path.name} is missing from {str(path.parent)!r}") from None
    except OSError as exc:
        raise IncompatibleModel(
            f"{what}: cannot open {path.name} ({exc.strerror}); symlinks are refused"
        ) from None
    return os.fdopen(fd, "rb")


def _read_json(path: Path, what: str) -> Any:
    with _open_regular(path, what) as f:
        data = f.read()
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IncompatibleModel(f"{what}: {path.name} is not valid JSON ({exc})") from None


def _read_weights(path: Path, what: str) -> dict[str, np.ndarray]:
    with _open_regular(path, what) as f:
        try:
            with np.load(f, allow_pickle=False) as npz:
                return {key: npz[key] for key in npz.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise IncompatibleModel(f"{what}: {path.name} is corrupt or not an .npz file ({exc})") from None


def _check_expected(what: str, arrays: dict[str, np.ndarray], expected: dict) -> None:
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    if missing or extra:
        raise IncompatibleModel(f"{what}: weights.npz arrays do not match the model: missing {missing}, "
                                f"unexpected {extra}")
    for key, (shape, dtype) in expected.items():
        arr = arrays[key]
        shape_ok = len(arr.shape) == len(shape) and all(
            e is None or e == a for e, a in zip(shape, arr.shape, strict=True)
        )
        if not shape_ok:
            raise IncompatibleModel(f"{what}: array {key!r}: expected shape {tuple(shape)}, got {arr.shape}")
        if dtype is not None and arr.dtype != np.dtype(dtype):
            raise IncompatibleModel(
                f"{what}: array {key!r}: expected dtype {np.dtype(dtype)}, got {arr.dtype}"
            )


def load_model_dir(
    directory: Path | str, expected: dict[str, tuple[tuple, Any]] | None = None
) -> tuple[dict[str, np.ndarray], dict, list[dict]]:
    """Load `(arrays, manifest, history)` from a model directory written by `save_model_dir`.

    Args:
        expected: optional name -> (shape, dtype); a shape entry of None matches any size, a dtype of None
            any dtype. Every array must be listed and no other may be present.
    Raises NotFound (missing directory, manifest or weights), IncompatibleModel (corrupt files, newer
    format, shape/dtype mismatch), InvalidInput (bad name, symlinked directory).
    """
    directory = Path(directory)
    name = validate_model_name(directory.name)
    what = f"model {name!r}"
    if directory.is_symlink():
        raise InvalidInput(f"{what}: {str(directory)!r} is a symlink; refusing to follow it", field=what)
    if not directory.is_dir():
        raise NotFound(f"{what}: no model directory at {str(directory)!r}")
    manifest = _read_json(directory / MANIFEST, what)
    if not isinstance(manifest, dict):
        raise IncompatibleModel(
            f"{what}: manifest.json: expected a JSON object, got {type(manifest).__name__}"
        )
    version = manifest.get("format_version")
    if not is_int(version) or version < 1:
        raise IncompatibleModel(
            f"{what}: manifest.json: expected an int format_version >= 1, got {version!r}"
        )
    if version > FORMAT_VERSION:
        raise IncompatibleModel(f"{what}: written by a newer version (format {version} > {FORMAT_VERSION}): "
                                "upgrade rnn-service")
    arrays = _read_weights(directory / WEIGHTS, what)
    if expected is not None:
        _check_expected(what, arrays, expected)
    try:
        history = _read_json(directory / HISTORY, what)
    except NotFound:
        history = []
    if not isinstance(history, list):
        raise IncompatibleModel(f"{what}: history.json: expected a JSON list, got {type(history).__name__}")
    return arrays, manifest, history


def list_model_dirs(parent: Path | str) -> list[str]:
    """Sorted names of the complete models in `parent` (real directories holding manifest and weights)."""
    parent = Path(parent)
    if not parent.is_dir():
        return []
    names = []
    for entry in parent.iterdir():
        if not NAME_PATTERN.fullmatch(entry.name) or entry.is_symlink() or not entry.is_dir():
            continue
        files = [entry / MANIFEST, entry / WEIGHTS]
        if all(f.is_file() and not f.is_symlink() for f in files):
            names.append(entry.name)
    return sorted(names)
