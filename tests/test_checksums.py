"""Tests of elasticity.checksums: sealing an entry, finding what is wrong with it, setting it aside."""

import json

from elasticity import checksums


def sealed(tmp_path):
    entry = tmp_path / "results" / "kind" / "key"
    (entry / "sub").mkdir(parents=True)
    (entry / "result.json").write_text('{"x": 1.0}')
    (entry / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 9000)  # over one read block
    checksums.seal(entry)
    return entry


def test_a_sealed_entry_lists_every_file_and_is_sound(tmp_path):
    entry = sealed(tmp_path)
    manifest = json.loads((entry / checksums.MANIFEST).read_text())
    assert sorted(manifest) == ["result.json", "sub/weights.bin"]
    assert manifest["sub/weights.bin"]["bytes"] == 256 * 9000
    assert checksums.is_sealed(entry) and checksums.damage(entry) is None and checksums.usable(entry)


def test_what_is_wrong_is_said_in_a_few_words(tmp_path):
    entry = sealed(tmp_path)
    (entry / "sub" / "weights.bin").write_bytes(b"\0" * 256 * 9000)
    assert checksums.damage(entry) == "sub/weights.bin does not match its checksum"
    (entry / "sub" / "weights.bin").write_bytes(b"\0")
    assert checksums.damage(entry) == f"sub/weights.bin has 1 bytes, {256 * 9000} were written"
    (entry / "sub" / "weights.bin").unlink()
    assert checksums.damage(entry) == "sub/weights.bin is missing"
    (entry / checksums.MANIFEST).write_text('{"result.json": ')
    assert checksums.damage(entry) == "its checksums.json is unreadable"


def test_a_file_changed_after_it_was_found_sound_is_still_caught(tmp_path):
    entry = sealed(tmp_path)
    assert checksums.damage(entry) is None
    (entry / "result.json").write_text('{"x": 2.0}')  # same size; a new modification time
    assert checksums.damage(entry) == "result.json does not match its checksum"


def test_a_damaged_entry_is_moved_aside_whole_with_one_line(tmp_path, capsys):
    entry = sealed(tmp_path)
    (entry / "result.json").write_text("{")
    assert not checksums.usable(entry) and not entry.exists()
    (aside,) = (entry.parent / ".damaged").iterdir()
    assert aside.name.startswith("key.") and (aside / "result.json").read_text() == "{"
    line = capsys.readouterr().err
    assert line.count("\n") == 1 and "result.json has 1 bytes, 10 were written" in line and str(aside) in line
    assert checksums.set_aside(entry, "gone") is None  # another process moved it first


def test_an_unfinished_entry_is_left_alone(tmp_path):
    entry = tmp_path / "key"
    entry.mkdir()
    (entry / "result.json").write_text("{}")
    assert not checksums.is_sealed(entry) and not checksums.usable(entry) and entry.exists()
