"""Tests of elasticity.archive: lossless files, stats, and refusals of corrupt input or a different model."""

import json
import math
import struct
import zlib

import numpy as np
import pytest
import transformers
from test_compression import bpe_tokenizer, tiny_model

from elasticity import archive, cli, compression, data
from elasticity.config import UserError


@pytest.fixture(scope="module")
def bpe():
    tok = bpe_tokenizer()
    return tiny_model(len(tok)), tok


@pytest.fixture(scope="module")
def held_out_texts():
    return [e.text for e in data.examples("rotten-tomatoes", "eval", n=100, seed=0)]


@pytest.fixture
def files(tmp_path, monkeypatch, bpe):
    """A family name the archive resolves to the tiny test model; "other" to a different random model."""
    model, tok = bpe
    other = tiny_model(len(tok), seed=7)

    def load(family, size, checkpoint, device):
        if family == "other":
            return other, tok
        if family != "tiny":
            raise UserError(f"unknown family {family!r}")
        return model, tok

    monkeypatch.setattr(archive, "_load_model", load)
    return tmp_path


@pytest.mark.parametrize("count", [pytest.param(100, marks=pytest.mark.slow), 8])
def test_round_trip_of_held_out_texts(bpe, held_out_texts, count):
    """100 held-out Rotten Tomatoes snippets (slow: ~30k model steps on 2 cores); 8 in the default run."""
    model, tok = bpe
    held_out_texts = held_out_texts[:count]
    assert len(held_out_texts) == count
    nll = compression.code_lengths_bits(model, tok, held_out_texts)
    for text, want_bits in zip(held_out_texts, nll, strict=True):
        raw = text.encode()
        blob, stats = archive.compress_bytes(raw, model, tok, window_tokens=24)
        restored, back = archive.decompress_bytes(blob, model, tok)
        assert restored == raw
        assert back["nll_bits"] == pytest.approx(stats["nll_bits"], rel=1e-12)
        assert stats["code_bits"] <= stats["nll_bits"] * 1.001 + 64
        if len(tok(text, add_special_tokens=False)["input_ids"]) <= 24:  # one window: same as the batch pass
            assert stats["nll_bits"] == pytest.approx(want_bits, rel=1e-4)


def test_incremental_nll_matches_the_batched_code_length(bpe, held_out_texts):
    model, tok = bpe
    text = " ".join(held_out_texts[:5])
    _, stats = archive.compress_bytes(text.encode(), model, tok)
    want = compression.code_lengths_bits(model, tok, [text])[0]
    assert stats["nll_bits"] == pytest.approx(want, rel=1e-4)
    assert stats["num_tokens"] > compression.window_tokens_for(model)  # several windows


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"a",
        b"\xff\xfe not utf-8 \x80\n second line\n",
        "caf\u00e9 \u2713\r\n\ttabs  and   spaces\n\n".encode(),
        bytes(range(256)),
    ],
)
def test_any_bytes_round_trip(bpe, raw):
    model, tok = bpe
    blob, stats = archive.compress_bytes(raw, model, tok)
    restored, _ = archive.decompress_bytes(blob, model, tok)
    assert restored == raw
    assert stats["bytes_in"] == len(raw) and stats["bytes_out"] == len(blob)


def test_tokenizer_without_bos_round_trips():
    tok = transformers.ByT5Tokenizer()
    model = tiny_model(len(tok), seed=2)
    raw = b"bytes level, no BOS: first token coded uniformly"
    blob, stats = archive.compress_bytes(raw, model, tok)
    assert archive.decompress_bytes(blob, model, tok)[0] == raw
    assert stats["nll_bits"] == pytest.approx(compression.code_lengths_bits(model, tok, [raw.decode()])[0], rel=1e-4)


def test_compress_and_decompress_files(files):
    src = files / "in.txt"
    src.write_text("A small file.\nWith two lines, and a trailing newline.\n")
    stats = archive.compress_file(src, files / "out.elz")
    assert set(stats) >= {"bytes_in", "bytes_out", "bits_per_byte", "nll_bits", "overhead_bits"}
    assert stats["bytes_out"] == (files / "out.elz").stat().st_size
    assert stats["bits_per_byte"] == pytest.approx(8 * stats["bytes_out"] / stats["bytes_in"])
    assert stats["overhead_bits"] == pytest.approx(8 * stats["bytes_out"] - stats["nll_bits"])
    back = archive.decompress_file(files / "out.elz", files / "back.txt")
    assert (files / "back.txt").read_bytes() == src.read_bytes()
    assert back["nll_bits"] == pytest.approx(stats["nll_bits"])
    header, _, _ = archive.read_header((files / "out.elz").read_bytes())
    assert header["family"] == "tiny" and header["num_tokens"] == stats["num_tokens"]


def _archive(files) -> bytes:
    src = files / "in.txt"
    src.write_text("some text to compress, long enough to have a few tokens\n" * 3)
    archive.compress_file(src, files / "a.elz")
    return (files / "a.elz").read_bytes()


@pytest.mark.parametrize("damage", ["truncate", "flip", "magic", "empty"])
def test_corrupt_or_truncated_archives_are_refused(files, damage):
    blob = bytearray(_archive(files))
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "flip":
        blob[len(blob) // 2] ^= 0x10
    elif damage == "magic":
        blob[0] ^= 1
    else:
        blob = bytearray()
    (files / "bad.elz").write_bytes(bytes(blob))
    with pytest.raises(UserError) as error:
        archive.decompress_file(files / "bad.elz", files / "out.txt")
    assert "\n" not in str(error.value)
    assert not (files / "out.txt").exists()
    assert not list(files.glob(".out.txt*"))  # no temporary leftovers either


def _reframe(header: dict, code: bytes, patch: bytes) -> bytes:
    """An archive with a valid checksum around the given (possibly doctored) header."""
    head = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    body = (
        archive.MAGIC
        + struct.pack(">I", len(head))
        + head
        + struct.pack(">Q", len(code))
        + code
        + struct.pack(">I", len(patch))
        + patch
    )
    return body + struct.pack(">I", zlib.crc32(body))


def test_a_different_model_is_refused(files):
    header, code, patch = archive.read_header(_archive(files))
    header["family"] = "other"  # re-frame the same code under a header that names another model
    (files / "other.elz").write_bytes(_reframe(header, code, patch))
    with pytest.raises(UserError, match="hash mismatch"):
        archive.decompress_file(files / "other.elz", files / "out.txt")
    assert not (files / "out.txt").exists()


def test_doctored_headers_and_codes_are_refused(files):
    header, code, patch = archive.read_header(_archive(files))
    del header["crc32"]
    with pytest.raises(UserError, match="lacks crc32"):
        archive.read_header(_reframe(header, code, patch))
    header, code, patch = archive.read_header(_archive(files))
    bad = bytes(b ^ 0x5A for b in code)  # a different code under a valid checksum: decodes to other text
    (files / "code.elz").write_bytes(_reframe(header, bad, patch))
    with pytest.raises(UserError, match="checksum|corrupt"):
        archive.decompress_file(files / "code.elz", files / "out.txt")
    assert not (files / "out.txt").exists()


def test_bad_paths_are_refused(files):
    with pytest.raises(UserError, match="does not exist"):
        archive.compress_file(files / "missing.txt", files / "x.elz")
    (files / "in.txt").write_text("x")
    with pytest.raises(UserError, match="is the input"):
        archive.compress_file(files / "in.txt", files / "in.txt")
    with pytest.raises(UserError, match="directory"):
        archive.compress_file(files / "in.txt", files / "nowhere" / "x.elz")
    with pytest.raises(UserError, match="unknown family"):
        archive.compress_file(files / "in.txt", files / "x.elz", family="nope")
    assert not (files / "x.elz").exists()


def test_cli_prints_stats_and_refuses_with_one_line(files, capsys):
    src = files / "in.txt"
    src.write_text("through the command line\n")
    assert cli.main(["compress", str(src), "-o", str(files / "c.elz")]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert {"bytes_in", "bytes_out", "bits_per_byte", "nll_bits", "overhead_bits"} <= set(stats)
    assert cli.main(["decompress", str(files / "c.elz"), "-o", str(files / "d.txt")]) == 0
    assert (files / "d.txt").read_bytes() == src.read_bytes()
    capsys.readouterr()
    (files / "t.elz").write_bytes((files / "c.elz").read_bytes()[:-3])
    assert cli.main(["decompress", str(files / "t.elz"), "-o", str(files / "e.txt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "archive" in err
    assert not (files / "e.txt").exists()


def test_model_hash_sees_one_changed_weight(bpe):
    model, tok = bpe
    other = tiny_model(len(tok))
    assert archive.model_sha256(model, tok) == archive.model_sha256(other, tok)
    with np.errstate(all="ignore"):
        p = next(other.parameters())
        p.data.view(-1)[0] += 1e-6
    assert archive.model_sha256(model, tok) != archive.model_sha256(other, tok)
    assert math.isfinite(archive.compress_bytes(b"hash", other, tok)[1]["nll_bits"])
