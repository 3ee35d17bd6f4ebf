import json
import math
import os

import pytest

from osteoscan.files import atomic_path, atomic_write, atomic_write_json, sha256_file


def test_atomic_write_replaces_whole_file_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    atomic_write(target, "first")
    atomic_write(target, b"second")
    assert target.read_text() == "second"
    assert os.listdir(target.parent) == ["out.txt"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_json_is_strict(tmp_path):
    target = tmp_path / "m.json"
    atomic_write_json(target, {"auc": 0.5, "path": tmp_path})
    assert json.loads(target.read_text())["auc"] == 0.5
    with pytest.raises(ValueError):
        atomic_write_json(target, {"auc": -math.inf})
    assert json.loads(target.read_text())["auc"] == 0.5


def test_sha256_file_matches_known_digest(tmp_path):
    target = tmp_path / "abc"
    target.write_bytes(b"abc")
    assert sha256_file(target) == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_check_writable_dir_creates_folder_and_refuses_a_file(tmp_path):
    from osteoscan.errors import NotWritableError
    from osteoscan.files import check_writable_dir

    assert check_writable_dir(tmp_path / "a" / "b", "--out").is_dir()
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotWritableError, match=r"--cache-dir .*f: is a file"):
        check_writable_dir(tmp_path / "f", "--cache-dir")


def test_check_writable_dir_refuses_a_folder_that_cannot_be_created():
    """/proc refuses new folders even to root (for whom permission bits do not apply)."""
    from osteoscan.errors import NotWritableError
    from osteoscan.files import check_writable_dir

    with pytest.raises(NotWritableError, match=r"--out /proc/osteoscan-x: cannot write there"):
        check_writable_dir("/proc/osteoscan-x", "--out")


def test_written_files_get_the_usual_permissions_not_mkstemps_0600(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic_write(tmp_path / "atomic.txt", "x")
    assert (tmp_path / "atomic.txt").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
