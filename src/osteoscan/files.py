"""Writing files so that no reader ever sees half of one, and hashing them.

Every file osteoscan writes (bundles, caches, reports, manifests, study results) goes through
:func:`atomic_write` or :func:`atomic_path`: the content is written to a unique temporary file in
the same folder and renamed over the target, so a crash or a kill leaves the old file or the new
one, never a mixture. This module is the one place for that mechanism and for sha256-of-file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_NEW_FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file


@contextlib.contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it over ``target``.

    For writers that want a file name (``np.save``, ``safetensors.save_file``, matplotlib). On any
    exception the temporary file is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _NEW_FILE_MODE)  # mkstemp's 0600 would hide results from colleagues
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write(target: Path | str, data: bytes | str) -> Path:
    """Write ``data`` (text is UTF-8) to ``target`` atomically and durably; returns ``target``."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    return Path(target)


def to_json(obj: Any) -> str:
    """Strict JSON (no NaN/Infinity, which strict readers reject), indented, newline-terminated.

    Raises ``ValueError`` on a non-finite float: the caller must turn it into ``null`` first.
    """
    return json.dumps(obj, indent=2, allow_nan=False, default=str) + "\n"


def atomic_write_json(target: Path | str, obj: Any) -> Path:
    """Write ``obj`` as strict JSON (see :func:`to_json`) atomically."""
    return atomic_write(target, to_json(obj))


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_writable_dir(folder: Path | str, what: str) -> Path:
    """Make sure ``folder`` exists (creating it) and accepts files, before any long work starts.

    ``what`` names the option for the message (e.g. ``"--cache-dir"``). Raises
    :class:`~osteoscan.errors.NotWritableError` naming the folder and what to do.
    """
    from osteoscan.errors import NotWritableError

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotWritableError(f"{what} {folder}: is a file, not a folder; name a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise NotWritableError(
            f"{what} {folder}: cannot write there ({reason}); choose a folder you can write to"
        ) from None
    return folder
