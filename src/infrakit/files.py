"""Atomic file replacement, for whatever keeps its state in files.

``instance-file`` writes its instance files with it, ``instance-process`` its state records,
the manager's file store its documents: a reader (or a crash) sees the old content or the
new, never half a file.
"""

from __future__ import annotations

import os
import pathlib
import tempfile


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
