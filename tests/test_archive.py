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
    model.train()  # coding runs in eval mode and gives the caller's mode back
    blob, stats = archive.compress_bytes(raw, model, tok)
    assert model.training
    restored, _ = archive.decompress_bytes(blob, model, tok)
    assert restored == raw and model.training
    model.eval()
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


def _reframe(header: dict | bytes, code: bytes, patch: bytes) -> bytes:
    """An archive with a valid checksum around the given (possibly doctored) header, framed as documented."""
    head = header if isinstance(header, bytes) else archive.encode_header(header)
    body = archive.MAGIC + head + struct.pack(">I", len(code)) + code + patch
    return body + struct.pack(">I", zlib.crc32(body))


def test_header_is_small_and_binary(files, bpe):
    """Format 2: a tiny-model archive spends under 64 bytes on header and framing (format 1: ~280)."""
    model, tok = bpe
    blob = _archive(files)
    header, code, patch = archive.read_header(blob)
    assert len(blob) - len(code) - len(patch) < 64
    assert len(archive.MAGIC + archive.encode_header(header)) + 8 + len(code) + len(patch) == len(blob)
    assert blob[: len(archive.MAGIC) + 1] == b"ELZ\x02"
    assert set(header) == set(archive.HEADER_KEYS)
    assert header["format"] == archive.FORMAT_VERSION == 2
    assert (header["family"], header["size"], header["checkpoint"]) == ("tiny", None, None)
    assert header["model_sha256"] == archive.model_sha256(model, tok)[:32]
    assert header["bos"] is True and header["bos_id"] == tok.bos_token_id
    assert header["vocab_size"] == compression.vocab_size_of(model)
    assert header["crc32"] == zlib.crc32((files / "in.txt").read_bytes())
    assert header["num_bytes"] == (files / "in.txt").stat().st_size
    assert _reframe(header, code, patch) == blob  # encode_header inverts read_header
    _, stats = archive.compress_bytes(b"x", model, tok, header={"family": "tiny"})
    assert stats["header_bytes"] + archive.FRAMING_BYTES < 64


def test_header_strings_and_absent_bos_round_trip():
    header = {
        "family": "smollm2-135m",
        "size": None,
        "checkpoint": "/a/caf\u00e9/" + "x" * 300,  # longer than 255 bytes: a 2-byte length
        "model_sha256": "ab" * 32,
        "num_tokens": 2**32 - 1,
        "num_bytes": 0,
        "window_tokens": 512,
        "vocab_size": 49_152,
        "bos_id": None,
        "threads": 16,
        "crc32": 0xFFFFFFFF,
    }
    back, code, patch = archive.read_header(_reframe(header, b"code", b"patch"))
    assert (code, patch) == (b"code", b"patch")
    assert back == {**header, "format": 2, "model_sha256": "ab" * 16, "bos": False}


@pytest.mark.parametrize(
    "change, match",
    [
        ({"num_bytes": 2**32}, "num_bytes"),
        ({"bos_id": archive.NO_BOS}, "bos_id"),
        ({"threads": -1}, "threads"),
        ({"window_tokens": 1.5}, "window_tokens"),
        ({"model_sha256": "abc"}, "model_sha256"),
        ({"family": "f" * 256}, "family"),
        ({"bos": False}, "bos"),
        ({"extra": 1}, "unknown"),
    ],
)
def test_encode_header_refuses_values_that_do_not_fit(change, match):
    header = {
        "model_sha256": "00" * 32,
        "num_tokens": 1,
        "num_bytes": 1,
        "window_tokens": 8,
        "vocab_size": 10,
        "bos_id": 0,
        "threads": 1,
        "crc32": 0,
    }
    archive.encode_header(header)
    with pytest.raises(ValueError, match=match):
        archive.encode_header({**header, **change})


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
    with pytest.raises(ValueError, match="lacks crc32"):
        archive.encode_header(header)
    header, code, patch = archive.read_header(_archive(files))
    head = archive.encode_header(header)
    for blob, match in [
        (_reframe(head[:20], b"", b""), "^truncated archive$"),  # shorter than any archive
        (_reframe(head[:-2] + b"\xff\xff", code, patch), r"^corrupt archive \(header truncated\)$"),
        (
            _reframe(archive.encode_header({**header, "size": None})[:-3] + b"\x01\xff\x00\x00", code, patch),
            "size is not UTF-8",
        ),
        (_reframe({**header, "window_tokens": 0}, code, patch), "window or thread count is zero"),
    ]:
        with pytest.raises(UserError, match=match) as error:
            archive.read_header(blob)
        assert "\n" not in str(error.value)
    body = archive.MAGIC + head + struct.pack(">I", len(code) + 1) + code  # a code length past the end
    with pytest.raises(UserError, match="code length exceeds"):
        archive.read_header(body + struct.pack(">I", zlib.crc32(body)))
    bad = bytes(b ^ 0x5A for b in code)  # a different code under a valid checksum: decodes to other text
    (files / "code.elz").write_bytes(_reframe(header, bad, patch))
    with pytest.raises(UserError, match="checksum|corrupt"):
        archive.decompress_file(files / "code.elz", files / "out.txt")
    assert not (files / "out.txt").exists()


@pytest.mark.parametrize("version", [1, 3])
def test_other_format_versions_are_refused(files, version):
    header, code, patch = archive.read_header(_archive(files))
    if version == 1:  # format 1 as it was written: magic "ELZ\x01", a JSON header, 8-byte code length
        head = json.dumps({**header, "format": 1}, separators=(",", ":"), sort_keys=True).encode()
        body = b"ELZ\x01" + struct.pack(">I", len(head)) + head + struct.pack(">Q", len(code)) + code
        body += struct.pack(">I", len(patch)) + patch
        blob = body + struct.pack(">I", zlib.crc32(body))
    else:
        blob = _reframe({**header, "format": version}, code, patch)
    (files / "old.elz").write_bytes(blob)
    with pytest.raises(UserError, match=f"archive format {version} is not supported \\(this is 2\\)") as error:
        archive.decompress_file(files / "old.elz", files / "out.txt")
    assert "\n" not in str(error.value)
    assert not (files / "out.txt").exists()


def test_bad_paths_are_refused(files):
    with pytest.raises(UserError, match="does not exist"):
        archive.compress_file(files / "missing.txt", files / "x.elz")
    (files / "in.txt").write_text("x")
    with pytest.raises(UserError, match="is the input"):
        archive.compress_file(files / "in.txt", files / "in.txt")
    with pytest.raises(UserError, match="its folder .* does not exist"):
        archive.compress_file(files / "in.txt", files / "nowhere" / "x.elz")
    with pytest.raises(UserError, match="is a directory"):
        archive.compress_file(files / "in.txt", files)
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
