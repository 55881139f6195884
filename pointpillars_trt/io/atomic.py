"""Result files that are either the old version or the complete new one, never half written.

:func:`atomic_file` (a file handle), :func:`atomic_write_text` and :func:`atomic_write_bytes` write into a temporary file in the target's
directory and :func:`os.replace` it over the target (atomic on POSIX within one file system); a
failure part-way (full disk, file-size limit, an exception) removes the temporary file and leaves
the previous target untouched. :func:`check_writable` tries the same before any work is done, so
that an output that cannot be written is reported before a long run rather than after it.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from ..errors import OutputError


def _mkdirs(directory: Path, what: str) -> None:
    """Make ``directory`` and its parents; OutputError naming ``what`` when that cannot be done."""
    existing = next((p for p in (directory, *directory.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise OutputError(f"{what}: {existing} is a file, not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{what}: cannot create the directory {directory}: {exc.strerror or exc}") from exc
    if not directory.is_dir():
        raise OutputError(f"{what}: {directory} is not a directory")


@contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file that becomes ``path`` when the block ends, complete, or never (missing parent
    directories are made). The new file gets the mode a plain ``open()`` would give it (mkstemp's
    is 0600), its data reach the disk (fsync) before the rename, and an exception inside the block
    removes it and leaves the previous ``path`` untouched.

    Raises:
        OutputError: the directory cannot be made or written, or the write failed part-way (an
            ``OSError`` inside the block too); the message names the file.
    """
    path = Path(path)
    _mkdirs(path.parent, str(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically through :func:`atomic_file`; returns the path.

    Raises:
        OutputError: the directory cannot be made or written, or the write failed part-way; the
            message names the file. The previous content of ``path``, if any, is kept.
    """
    with atomic_file(path) as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def check_writable(path: str | Path, *, directory: bool = False) -> Path:
    """Make sure an output can be written before the work starts; returns the path.

    ``directory=False``: ``path`` is a file to be written atomically (its parent is made and a
    temporary file is created and removed there; an existing ``path`` must not be a directory).
    ``directory=True``: ``path`` is a directory of outputs (made, then probed the same way).

    Raises:
        OutputError: naming the path and what is wrong (parent is a file, read-only, ``/proc``...).
    """
    path = Path(path)
    target = path if directory else path.parent
    if not directory and path.is_dir():
        raise OutputError(f"{path}: is a directory, expected a file name")
    _mkdirs(target, str(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".pp_probe_", suffix=".tmp", dir=target)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write in {target}: {exc.strerror or exc}") from exc
    return path


def file_mode() -> int:
    """The mode a plain ``open()`` would give a new file, ``0o666 & ~umask``: for files made by
    mkstemp or by libraries (safetensors' ``save_file``) that create them 0600 whatever the umask."""
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask (read by setting and restoring it); mkstemp makes files 0600 whatever it is."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
