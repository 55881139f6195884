"""Atomic result writes and the up-front writability check, on real files."""

import os

import pytest

from pointpillars_trt.errors import OutputError
from pointpillars_trt.io.atomic import atomic_file, atomic_write_text, check_writable


def test_write_replaces_and_makes_parents(tmp_path):
    path = tmp_path / "a" / "b" / "out.json"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two"
    assert os.listdir(path.parent) == ["out.json"]
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_write_that_fails_part_way_keeps_the_old_file_and_no_temp(tmp_path):
    import resource

    path = tmp_path / "out.txt"
    path.write_text("old")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))  # as a full disk: the write stops part-way
    try:
        with pytest.raises(OutputError, match="out.txt: cannot write: File too large"):
            atomic_write_text(path, "new" * 1000)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["out.txt"]


def test_check_writable(tmp_path):
    (tmp_path / "f").write_text("x")
    assert check_writable(tmp_path / "new" / "r.json") == tmp_path / "new" / "r.json"
    assert (tmp_path / "new").is_dir() and os.listdir(tmp_path / "new") == []
    check_writable(tmp_path / "labels", directory=True)
    assert (tmp_path / "labels").is_dir()
    with pytest.raises(OutputError, match="f is a file, not a directory"):
        check_writable(tmp_path / "f" / "r.json")
    with pytest.raises(OutputError, match="is a directory"):
        check_writable(tmp_path / "labels")
    with pytest.raises(OutputError, match="/proc"):
        check_writable("/proc/pp_test.json")
    with pytest.raises(OutputError, match="cannot write"):
        atomic_write_text("/proc/pp_test.json", "x")


def test_atomic_file_is_all_or_nothing(tmp_path):
    path = tmp_path / "out.bin"
    with atomic_file(path) as fh:
        fh.write(b"old")
    assert path.read_bytes() == b"old" and path.stat().st_mode & 0o777 == 0o666 & ~_umask()
    with pytest.raises(RuntimeError, match="writer broke"):
        with atomic_file(path) as fh:
            fh.write(b"half of the new")
            raise RuntimeError("writer broke")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]
    with pytest.raises(OutputError, match=r"out.bin: cannot write: .*boom"):
        with atomic_file(path) as fh:
            raise OSError("boom")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]
