"""Private files on disk: the data dir (0700), the SQLite database and the secret key (0600).

Everything is created with its final mode in the creating call, so there is no moment
in which another local user could open it; the process umask can only make a mode
stricter. Modes found looser than that at startup (an older release created the
database 0644, or a restored backup) are tightened, with a warning so the operator
learns that the file was readable by others until now.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("archnest.files")

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents), the directory itself 0700; tighten it if looser."""
    # Parents get the usual mode: only the data dir itself is ours to lock down.
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, PRIVATE_DIR)
    except FileExistsError:
        if not path.is_dir():
            raise
    tighten(path, PRIVATE_DIR)


def create_private_file(path: Path) -> bool:
    """Create an empty ``path`` with mode 0600 unless it exists; True when it was created.

    An existing file is left as it is, apart from a mode looser than 0600.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        tighten(path, PRIVATE_FILE)
        return False
    os.close(fd)
    return True


def tighten(path: Path, mode: int) -> None:
    """Remove permission bits of ``path`` beyond ``mode``, logging a warning when there were any."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    current = stat.S_IMODE(st.st_mode)
    if not current & ~mode:
        return
    what = "directory" if stat.S_ISDIR(st.st_mode) else "file"
    if stat.S_ISDIR(st.st_mode) and current & stat.S_ISVTX:
        # A sticky directory is shared by design (/tmp): locking it would break the host.
        log.warning(
            "%s %s has mode %04o and is shared (sticky); not changing it: give ArchNest "
            "its own data directory",
            what,
            path,
            current,
        )
        return
    new = current & mode
    try:
        os.chmod(path, new)
    except OSError as exc:
        log.warning(
            "%s %s has mode %04o, readable by other users, and could not be changed to %04o: %s",
            what,
            path,
            current,
            new,
            exc.strerror or exc,
        )
        return
    log.warning(
        "%s %s had mode %04o, open to other users; changed it to %04o", what, path, current, new
    )


__all__ = ["create_private_file", "make_private_dir", "tighten"]
