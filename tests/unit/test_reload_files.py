"""What the config watcher reads and compares: tracked files and stat fingerprints."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.watched_files import TrackedFiles, fingerprint


def test_tracked_files_remember_reads_failures_and_globs(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("a")
    tracked = TrackedFiles()
    assert tracked.read_bytes(tmp_path / "a.yaml") == b"a"
    with pytest.raises(FileNotFoundError):
        tracked.read_bytes(tmp_path / "missing")
    assert tracked.glob(str(tmp_path / "*.yaml")) == [tmp_path / "a.yaml"]
    assert tracked.digests[tmp_path / "missing"] is None
    assert tracked.globs == {str(tmp_path / "*.yaml"): (str(tmp_path / "a.yaml"),)}
    assert tracked.unchanged()


@pytest.mark.parametrize("change", [
    pytest.param(lambda d: (d / "a.yaml").write_text("b"), id="a file's content"),
    pytest.param(lambda d: (d / "a.yaml").unlink(), id="a file removed"),
    pytest.param(lambda d: (d / "missing").write_text("now here"), id="a missing file appears"),
    pytest.param(lambda d: (d / "b.yaml").write_text("b"), id="a new file for a pattern"),
])
def test_tracked_files_notice_every_kind_of_change(tmp_path: Path, change: object) -> None:
    (tmp_path / "a.yaml").write_text("a")
    tracked = TrackedFiles()
    tracked.read_bytes(tmp_path / "a.yaml")
    with pytest.raises(FileNotFoundError):
        tracked.read_bytes(tmp_path / "missing")
    tracked.glob(str(tmp_path / "*.yaml"))
    change(tmp_path)  # type: ignore[operator]
    assert not tracked.unchanged()


def test_a_same_size_rewrite_with_the_same_mtime_is_seen_while_recent(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("scope: a\n")
    tracked = TrackedFiles()
    tracked.read_bytes(path)
    before = fingerprint([tracked])
    stat = path.stat()
    path.write_text("scope: b\n")  # same size, and (forced) the same mtime: one clock tick
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert fingerprint([tracked]) != before


def test_a_swapped_symlink_target_is_seen_by_its_inode(tmp_path: Path) -> None:
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    for version in ("v1", "v2"):
        target = tmp_path / version / "gateway.yaml"
        target.write_text("same text\n")
        os.utime(target, ns=(0, 0))  # old and equal mtimes: only the inode differs
    (tmp_path / "data").symlink_to("v1")
    link = tmp_path / "gateway.yaml"
    link.symlink_to(Path("data") / "gateway.yaml")
    tracked = TrackedFiles()
    tracked.read_bytes(link)
    before = fingerprint([tracked])
    (tmp_path / "data_tmp").symlink_to("v2")
    os.replace(tmp_path / "data_tmp", tmp_path / "data")
    assert fingerprint([tracked]) != before
    assert tracked.unchanged()  # same content: a reload would find nothing to do
