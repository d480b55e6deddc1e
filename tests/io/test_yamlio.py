"""Writing files: atomic for regular files, through for special files, symbolic links kept, modes from the umask."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from bnnmilp.errors import OutputError
from bnnmilp.io.yamlio import atomic_write, check_output_path, write_text_atomic


def test_a_symbolic_link_is_kept_and_its_target_written(tmp_path):
    real = tmp_path / "real.csv"
    real.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    write_text_atomic(link, "new\n")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == "new\n" and sorted(p.name for p in tmp_path.iterdir()) == ["link.csv", "real.csv"]
    dangling = tmp_path / "later.csv"
    dangling.symlink_to(tmp_path / "made.csv")
    write_text_atomic(dangling, "x\n")
    assert dangling.is_symlink() and (tmp_path / "made.csv").read_text() == "x\n"


def test_a_fifo_is_written_through_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    assert check_output_path(fifo) == fifo
    write_text_atomic(fifo, "through the pipe\n")
    reader.join(timeout=10)
    assert got == ["through the pipe\n"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_a_character_device_is_written_through(tmp_path):
    before = os.stat("/dev/null")
    atomic_write("/dev/null", lambda tmp: tmp.write_bytes(b"discarded"))
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)
    assert check_output_path("/dev/null") == __import__("pathlib").Path("/dev/null")


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_get_their_mode_from_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        write_text_atomic(tmp_path / "a.txt", "a\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.txt").st_mode) == mode


def test_a_replaced_file_keeps_its_mode(tmp_path):
    f = tmp_path / "keep.txt"
    f.write_text("1\n")
    f.chmod(0o640)
    write_text_atomic(f, "2\n")
    assert f.read_text() == "2\n" and stat.S_IMODE(os.stat(f).st_mode) == 0o640


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    def boom(tmp):
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match="No space left on device"):
        atomic_write(tmp_path / "x.yaml", boom)
    assert list(tmp_path.iterdir()) == []
