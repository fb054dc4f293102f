"""One way to replace a file: write a temporary file of this process's own beside it, then rename it into
place, so that a kill or a full disk at any moment leaves the old file or the new one, never a torn one.
Used by checkpoints, the data cache, `train`'s outputs, executed notebooks and the weight checks."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic(path, suffix: str = ".tmp", what: str = ""):
    """Yield the path of an empty temporary file beside ``path`` (``.<name>.<random><suffix>``; give the
    suffix a writer insists on, e.g. ``.ipynb``); when the block ends without error it is renamed to
    ``path``. On any error the temporary file is removed and ``path`` is left as it was; an ``OSError``
    (a read-only folder, a full disk) is raised again naming ``path`` (as ``what``, e.g. "the processed
    cache", where given), with its errno kept."""
    name = f"{what} {path}" if what else str(path)
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as e:
        raise OSError(e.errno, f"cannot write {name}: {e.strerror or e}") from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise OSError(e.errno, f"cannot write {name}: {e.strerror or e}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
