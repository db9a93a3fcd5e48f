"""Atomic file replacement, for plugins that keep their state in files.

``instance-file`` writes its instance files with it, ``instance-process`` its state records:
a reader (or a crash) sees the old content or the new, never half a file.
"""

from __future__ import annotations

import os
import pathlib
import tempfile


def write_atomically(path: pathlib.Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temporary file beside it, fsync, rename.

    The temporary file's name starts with ``.``, which directory readers skip.
    """
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        pathlib.Path(temporary).unlink(missing_ok=True)
        raise
