"""Tests of the checks of the files a command reads and writes."""

import pytest

from elasticity import files
from elasticity.config import UserError


def test_a_good_input_and_output_pass(tmp_path):
    (tmp_path / "in.txt").write_text("x")
    assert files.check_input_output(str(tmp_path / "in.txt"), tmp_path / "out") == (
        tmp_path / "in.txt", tmp_path / "out")
    assert files.check_output_folder(tmp_path / "new") == tmp_path / "new"
    assert files.check_output_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"  # made later
    assert not (tmp_path / "new").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]


@pytest.mark.parametrize("src, dst, message", [
    ("missing.txt", "out", "input file '{tmp}/missing.txt' does not exist or is not a file"),
    ("folder", "out", "input file '{tmp}/folder' does not exist or is not a file"),
    ("in.txt", "in.txt", "output '{tmp}/in.txt' is the input file; choose another name"),
    ("in.txt", "folder", "output '{tmp}/folder' is a directory; give a file name"),
    ("in.txt", "no/out", "output '{tmp}/no/out': its folder '{tmp}/no' does not exist"),
    ("in.txt", "/proc/out", "output '/proc/out': cannot write in '/proc'"),
])
def test_bad_paths_are_one_line(tmp_path, src, dst, message):
    (tmp_path / "in.txt").write_text("x")
    (tmp_path / "folder").mkdir()
    with pytest.raises(UserError) as error:
        files.check_input_output(tmp_path / src, tmp_path / dst)
    assert str(error.value).startswith(message.format(tmp=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "in.txt"]  # nothing written


def test_an_output_folder_that_is_a_file_or_unwritable_is_refused(tmp_path):
    (tmp_path / "in.txt").write_text("x")
    with pytest.raises(UserError, match="output folder '.*in.txt' is a file"):
        files.check_output_folder(tmp_path / "in.txt")
    with pytest.raises(UserError, match="output folder '/proc/x': cannot write in '/proc'"):
        files.check_output_folder("/proc/x")
    with pytest.raises(UserError, match="output folder '.*in.txt/sub': '.*in.txt' is a file"):
        files.check_output_folder(tmp_path / "in.txt" / "sub")


def test_an_output_file_must_not_be_a_folder_and_its_folder_writable(tmp_path):
    assert files.check_output_file(tmp_path / "new.json") == tmp_path / "new.json"
    with pytest.raises(UserError, match="is a directory; give a file name"):
        files.check_output_file(tmp_path)
    with pytest.raises(UserError, match="its folder '.*no' does not exist"):
        files.check_output_file(tmp_path / "no" / "x.json")
