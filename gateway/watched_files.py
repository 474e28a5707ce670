"""The files a config depends on, and a cheap fingerprint of their state on disk.

``TrackedFiles`` is the ``ConfigFiles`` the reload watcher gives the loader and the compiler:
it remembers every file read (with its sha256) and every glob pattern expanded (with the files
found), and can tell whether they all still read the same. ``fingerprint`` is the per-poll
check: ``stat()`` of every file (following symlinks, so a Kubernetes ``..data`` swap shows a
new inode) and the file list of every pattern.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from .config.include import ConfigFiles

Stat = tuple[int, int, int, int, str] | None
#: A file modified this recently is also hashed: two same-size writes within one tick of the
#: file system's clock (a few ms) leave mtime unchanged (git's "racy clean" problem).
_RACY_NS = 2_000_000_000
Fingerprint = tuple[tuple[tuple[str, Stat], ...], tuple[tuple[str, tuple[str, ...]], ...]]


class TrackedFiles(ConfigFiles):
    """Reads like ``ConfigFiles`` and remembers what it read (with sha256) and globbed."""

    def __init__(self) -> None:
        self.digests: dict[Path, str | None] = {}  # None: the read failed
        self.globs: dict[str, tuple[str, ...]] = {}

    def read_bytes(self, path: Path) -> bytes:
        try:
            data = super().read_bytes(path)
        except OSError:
            self.digests[path] = None
            raise
        self.digests[path] = hashlib.sha256(data).hexdigest()
        return data

    def glob(self, pattern: str) -> list[Path]:
        found = super().glob(pattern)
        self.globs[pattern] = tuple(str(p) for p in found)
        return found

    def unchanged(self) -> bool:
        """Whether every tracked file and pattern still reads as it did."""
        plain = ConfigFiles()
        for pattern, found in self.globs.items():
            if tuple(str(p) for p in plain.glob(pattern)) != found:
                return False
        for path, digest in self.digests.items():
            try:
                now: str | None = hashlib.sha256(plain.read_bytes(path)).hexdigest()
            except OSError:
                now = None
            if now != digest:
                return False
        return True


def _stat(path: str) -> Stat:
    try:
        st = os.stat(path)  # follows symlinks: a swapped ..data link shows a new inode
        digest = ""
        if time.time_ns() - st.st_mtime_ns < _RACY_NS:
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev, digest)


def fingerprint(watched: list[TrackedFiles]) -> Fingerprint:
    """stat() of every watched file and the file list of every watched pattern."""
    paths = sorted({str(p) for t in watched for p in t.digests})
    patterns = sorted({p for t in watched for p in t.globs})
    plain = ConfigFiles()
    return (
        tuple((p, _stat(p)) for p in paths),
        tuple((p, tuple(str(f) for f in plain.glob(p))) for p in patterns),
    )
