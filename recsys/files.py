"""Small file helpers every stage shares: atomic text files and the checkout's commit."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def write_atomic(path: Path | str, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename.

    A reader sees the previous file or the complete new one, never a part: the text goes to
    a temporary file in the same folder (one file system), is flushed to disk, then replaces
    ``path`` with :func:`os.replace`; the temporary file is removed if anything fails. The file
    is readable by everyone (``0644``: reports and manifests are meant to be read).

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # persist the rename itself; best effort (not supported everywhere)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def git_sha(root: Path = PROJECT_ROOT, *, short: bool = False) -> str | None:
    """``HEAD`` of the checkout at ``root``, ending ``-dirty`` when it has changes; ``None`` outside git.

    Args:
        root: Folder of the checkout.
        short: Abbreviated commit (what manifests record) instead of the full one.
    """
    try:
        args = ["git", "rev-parse", *(["--short"] if short else []), "HEAD"]
        sha = subprocess.run(args, cwd=root, capture_output=True, text=True, check=True, timeout=10)
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
