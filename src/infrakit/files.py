"""Writing files whole, for whatever keeps its state in files.

:func:`write_atomically` replaces a file (``instance-process`` its state records, the manager's
file store its documents, ``instance-file`` a relabelled instance): a reader (or a crash) sees
the old content or the new, never half a file. :func:`create` writes a new file in place with
one ``write()``, as the original Go plugins do: half the inode work of a temporary file and a
rename, for readers that take an empty or unparsable file as "not there yet" (``instance-file``
provisioning an instance).
"""

from __future__ import annotations

import os
import pathlib
import tempfile


def create(path: pathlib.Path, data: bytes, *, mode: int = 0o600) -> os.stat_result:
    """Create ``path`` (``FileExistsError`` if it exists) holding ``data``; its version as
    written (``fstat`` before close: no second lookup of the name).

    Not atomic: until the write completes a reader may find the file empty (and, for data
    larger than a page, short). Not fsynced. On failure the partial file is removed.
    """
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:  # one write() for a regular file, short only when the disk fills
            view = view[os.write(handle, view):]
        return os.fstat(handle)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    finally:
        os.close(handle)


def write_atomically(path: pathlib.Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data``: temporary file beside it, fsync, rename.

    The temporary file's name starts with ``.``, which directory readers skip.
    ``durable=False`` skips the fsync: readers and a crash of our process still see the old
    content or the new, only a crash of the whole machine may lose the write (ext4 commits
    a file replaced by rename before the rename itself, see ``auto_da_alloc``).
    """
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            if durable:
                os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        pathlib.Path(temporary).unlink(missing_ok=True)
        raise
    if durable:
        # The rename itself is durable only once the directory entry is.
        directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
