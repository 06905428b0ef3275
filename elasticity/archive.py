"""The compressed file format behind `elasticity compress/decompress`: arithmetic coding with a language model."""

from __future__ import annotations

import difflib
import hashlib
import json
import lzma
import math
import os
import struct
import tempfile
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

from elasticity import coding, compression, files, numerics
from elasticity.config import UserError
from elasticity.modes import evaluating, no_grad

# ---------------------------------------------------------------------------------------------------------
# File layout (format 2; all integers big-endian, packed with `struct`):
#
#   MAGIC "ELZ" (3 bytes)
#   header (49 bytes for a `tiny` file with no size or checkpoint named; `encode_header` / `read_header`):
#     format version   B   2 (a format-1 file reads as 1 here: its magic was "ELZ\x01", then a JSON header)
#     model_sha256     16s the first 16 bytes of the SHA-256 digest of `model_sha256` (raw, not hex)
#     num_tokens       I   tokens coded (the decoder stops there)
#     num_bytes        I   size of the original
#     window_tokens    H   tokens per coding window
#     vocab_size       I   length of the model's distributions
#     bos_id           I   the tokenizer's BOS token id; 0xFFFFFFFF: it has none
#     threads          H   the encoder's CPU thread count (the decoder uses the same)
#     crc32            I   crc32 of the original
#     family           B length + UTF-8 \
#     size             B length + UTF-8  } empty when absent (the `header` argument of `compress_bytes`)
#     checkpoint       H length + UTF-8 /
#   code length C (4 bytes)   | the arithmetic code of all tokens (elasticity.coding)
#   patch (the rest up to the trailer) | an lzma-compressed list of line replacements, empty when the
#                               tokenizer gives the text back byte for byte (see below)
#   crc32 of everything above (4 bytes)
#
# Framing (magic, code length, trailing crc32) is FRAMING_BYTES = 11 bytes, so a `tiny` file costs 60 bytes
# besides its code and patch (format 1: a ~250-byte JSON header and 24 bytes of framing). Sizes are limited to
# 4 GiB (num_bytes, num_tokens, code); the model is identified by 128 bits of its hash.
#
# Bit accounting. The tokens are coded exactly as `compression.code_lengths_bits` counts them: windows of
# `window_tokens` tokens, each after BOS (or its first token uniform over V when the tokenizer has no BOS),
# no EOS (the header's token count tells the decoder where to stop). `nll_bits` is -log2 of the float64
# probabilities the coder was driven with, summed over all tokens: the model's ideal code length.
# `overhead_bits` = 8 * (file size) - nll_bits: the coder's termination and quantisation loss, the
# header, the patch and the framing; `code_overhead_bits` is the coder's share alone.
#
# Tokenizers do not always give text back byte for byte (normalisation, invalid UTF-8, which is decoded
# with replacement characters). The decoder's text is therefore compared with the original line by line;
# lines that differ are stored verbatim in the patch, so the format is lossless for any file, and the
# patch's size is part of the overhead.
#
# Determinism. Both directions run the same token-by-token forward pass with a KV cache, with the same
# number of CPU threads (the encoder's, recorded in the header and set by the decoder), so the decoder
# sees the very float vectors the encoder used; see
# `elasticity.coding` for why batched and incremental passes must not be mixed. The guarantee holds on
# the same machine type with the same library versions; a crc32 of the original bytes catches the rest.
# ---------------------------------------------------------------------------------------------------------

MAGIC = b"ELZ"
FORMAT_VERSION = 2
SHA_BYTES = 16  # bytes of the model's SHA-256 digest the header keeps
NO_BOS = 0xFFFFFFFF  # the header's bos when the tokenizer has no BOS token
# The keys of `read_header`'s dict: bos is True when the tokenizer has a BOS token, bos_id that token (or None);
# model_sha256 is the hex of the stored digest prefix; family, size and checkpoint are None when absent.
HEADER_KEYS = (
    "format",
    "family",
    "size",
    "checkpoint",
    "model_sha256",
    "num_tokens",
    "num_bytes",
    "window_tokens",
    "vocab_size",
    "bos",
    "bos_id",
    "threads",
    "crc32",
)
_FIXED_FIELDS = (
    ("format", "B"),
    ("model_sha256", f"{SHA_BYTES}s"),
    ("num_tokens", "I"),
    ("num_bytes", "I"),
    ("window_tokens", "H"),
    ("vocab_size", "I"),
    ("bos_id", "I"),
    ("threads", "H"),
    ("crc32", "I"),
)
_FIXED_KEYS = tuple(key for key, _ in _FIXED_FIELDS)
_FIXED = struct.Struct(">" + "".join(code for _, code in _FIXED_FIELDS))
_STRINGS = (("family", struct.Struct(">B")), ("size", struct.Struct(">B")), ("checkpoint", struct.Struct(">H")))
_LENGTH = struct.Struct(">I")  # the code length and the trailing crc32
FRAMING_BYTES = len(MAGIC) + 2 * _LENGTH.size  # magic, code length, trailing crc32
_MIN_SIZE = FRAMING_BYTES + _FIXED.size + sum(length.size for _, length in _STRINGS)


def model_sha256(model, tokenizer) -> str:
    """Hash of the model's parameters and buffers (names, dtypes, shapes, bytes) and of the tokenizer's vocab."""
    import torch

    digest = hashlib.sha256()
    digest.update(type(model).__name__.encode())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    vocab = sorted(tokenizer.get_vocab().items())
    digest.update(json.dumps([vocab, tokenizer.bos_token_id, tokenizer.eos_token_id]).encode())
    return digest.hexdigest()


def _load_model(family: str, size: str | None, checkpoint: str | None, device: str):
    """The model and tokenizer a header names (monkeypatched in tests until `elasticity.models` exists)."""
    from elasticity import models

    if checkpoint is None:
        return models.load(family, size=size, device=device)
    path = Path(checkpoint)
    if not path.is_dir():
        raise UserError(f"checkpoint {checkpoint!r} is not a directory")
    if (path / "adapter_config.json").is_file():  # a LoRA checkpoint: adapters on the family's base
        from peft import PeftModel

        base, tokenizer = models.load(family, size=size, device=device)
        model = PeftModel.from_pretrained(base, str(path)).merge_and_unload()
        return model, tokenizer
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).to(device)
    return model, tokenizer


def _pmf(logits: torch.Tensor) -> np.ndarray:
    import torch

    return torch.softmax(logits.double(), dim=-1).cpu().numpy()


class _Stepper:
    """The model's next-token distributions, one token at a time with a KV cache (same on both sides)."""

    def __init__(self, model, bos_id: int | None, vocab_size: int):
        self.model, self.bos_id, self.vocab_size = model, bos_id, vocab_size
        self.device = next(model.parameters()).device
        self.past = None

    @no_grad  # also when used outside `evaluating` (benchmarks/coder.py times it alone)
    def _feed(self, token: int) -> np.ndarray:
        import torch

        out = self.model(input_ids=torch.tensor([[token]], device=self.device), cache=self.past, use_cache=True)
        self.past = out.cache
        return _pmf(out.logits[0, -1])

    def start_window(self) -> np.ndarray:
        """Reset the context; the distribution of a window's first token."""
        self.past = None
        if self.bos_id is None:
            return np.full(self.vocab_size, 1.0 / self.vocab_size)
        return self._feed(self.bos_id)

    def advance(self, token: int) -> np.ndarray:
        """Append `token` to the context; the distribution of the token after it."""
        return self._feed(token)


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def _make_patch(rebuilt: bytes, original: bytes) -> bytes:
    if rebuilt == original:
        return b""
    a, b = _lines(rebuilt), _lines(original)
    ops = [
        [i1, i2, b"".join(b[j1:j2]).hex()]
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
        if tag != "equal"
    ]
    return lzma.compress(json.dumps(ops).encode(), preset=9)


def _apply_patch(rebuilt: bytes, patch: bytes) -> bytes:
    if not patch:
        return rebuilt
    a = _lines(rebuilt)
    out, cursor = [], 0
    for i1, i2, replacement in json.loads(lzma.decompress(patch)):
        out.extend(a[cursor:i1])
        out.append(bytes.fromhex(replacement))
        cursor = i2
    out.extend(a[cursor:])
    return b"".join(out)


def _detokenize(tokenizer, ids: list[int]) -> bytes:
    if not ids:
        return b""
    return tokenizer.decode(ids, clean_up_tokenization_spaces=False).encode("utf-8")


def _write_atomically(dst: Path, payload: bytes) -> None:
    """Write into a temporary file beside `dst`, then rename: no partial `dst` ever exists."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".part", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def compress_bytes(
    data: bytes, model, tokenizer, *, header: dict | None = None, window_tokens: int | None = None
) -> tuple[bytes, dict]:
    """Arithmetic-code `data` with a model; returns (archive bytes, stats). See the layout comment.

    Args:
        data: the file's bytes (less than 4 GiB).
        model, tokenizer: a causal LM on any device, and its tokenizer.
        header: the header's names of the model: family, size, checkpoint (strings or None), stored as given.
        window_tokens: tokens per coding window (None: the model's context, capped at 512).

    Raises:
        UserError: when the file, its token count or a name does not fit the header (checked before coding).
        ValueError: on a `header` key other than family, size and checkpoint.
    """
    start = time.perf_counter()
    names = dict(header or {})
    unknown = set(names) - {name for name, _ in _STRINGS}
    if unknown:
        raise ValueError(f"compress_bytes stores only family, size and checkpoint; got {sorted(unknown)}")
    if len(data) > 0xFFFFFFFF:
        raise UserError(f"the input has {len(data)} bytes; the archive format stores files below 4 GiB")
    text = data.decode("utf-8", errors="replace")
    ids = compression.tokenize(tokenizer, [text])[0] if text else []
    patch = _make_patch(_detokenize(tokenizer, ids), data)
    window = compression.window_tokens_for(model, window_tokens)
    vocab = compression.vocab_size_of(model)
    record = header_record(data, len(ids), model, tokenizer, window, vocab, names)
    threads = record["threads"]
    try:
        head_bytes = encode_header(record)
    except ValueError as error:
        raise UserError(f"cannot write the archive header: {error}") from None
    encoder, nll_bits = coding.Encoder(), 0.0
    with numerics.torch_threads(threads), evaluating(model):
        stepper = _Stepper(model, tokenizer.bos_token_id, vocab)
        for win in compression.windows(ids, window):
            pmf = stepper.start_window()
            for k, token in enumerate(win):
                encoder.encode_symbol(token, pmf)
                nll_bits -= math.log2(pmf[token]) if pmf[token] > 0 else -math.inf
                if k + 1 < len(win):
                    pmf = stepper.advance(token)
    code = encoder.finish()
    if len(code) > 0xFFFFFFFF:
        raise UserError("the arithmetic code exceeds 4 GiB, more than the archive format stores")
    body = MAGIC + head_bytes + _LENGTH.pack(len(code)) + code + patch
    blob = body + _LENGTH.pack(zlib.crc32(body))
    stats = _stats(len(data), len(blob), nll_bits, len(code), len(patch), len(head_bytes), len(ids))
    stats["seconds"] = round(time.perf_counter() - start, 3)
    return blob, stats


def _stats(
    num_bytes: int,
    archive_bytes: int,
    nll_bits: float,
    code_bytes: int,
    patch_bytes: int,
    header_bytes: int,
    num_tokens: int,
) -> dict:
    return {
        "bytes_in": num_bytes,
        "bytes_out": archive_bytes,
        "bits_per_byte": 8 * archive_bytes / num_bytes if num_bytes else float("nan"),
        "nll_bits": nll_bits,
        "overhead_bits": 8 * archive_bytes - nll_bits,
        "code_bits": 8 * code_bytes,
        "code_overhead_bits": 8 * code_bytes - nll_bits,
        "header_bytes": header_bytes,
        "patch_bytes": patch_bytes,
        "num_tokens": num_tokens,
    }


def header_record(data: bytes, num_tokens: int, model, tokenizer, window: int, vocab: int,
                  names: dict | None = None) -> dict:
    """The header's fields for `data` coded as `num_tokens` tokens by this model with this process's threads
    (what `encode_header` packs); `names`: family, size, checkpoint."""
    import torch

    return {**(names or {}), "model_sha256": model_sha256(model, tokenizer), "num_tokens": num_tokens,
            "num_bytes": len(data), "window_tokens": window, "vocab_size": vocab, "bos_id": tokenizer.bos_token_id,
            "threads": torch.get_num_threads(), "crc32": zlib.crc32(data)}


def encode_header(header: dict) -> bytes:
    """The binary header of the layout comment (what follows the magic bytes), from a dict like `read_header`'s.

    Args:
        header: model_sha256 (hex, at least the first 2 * SHA_BYTES digits), num_tokens, num_bytes,
            window_tokens, vocab_size, bos_id (int or None), threads, crc32; optional: family, size,
            checkpoint (str or None), format (default FORMAT_VERSION), bos (must agree with bos_id).

    Raises:
        ValueError: (one line) on a missing or unknown key, or a value that does not fit its field.
    """
    unknown = set(header) - set(HEADER_KEYS)
    if unknown:
        raise ValueError(f"unknown header field(s) {', '.join(sorted(unknown))}")
    missing = [k for k in _FIXED_KEYS if k != "format" and k not in header]
    if missing:
        raise ValueError(f"header lacks {', '.join(missing)}")
    bos_id = header["bos_id"]
    if "bos" in header and header["bos"] != (bos_id is not None):
        raise ValueError(f"header has bos={header['bos']!r} but bos_id={bos_id!r}")
    try:
        sha = bytes.fromhex(header["model_sha256"])[:SHA_BYTES]
    except (TypeError, ValueError):
        sha = b""
    if len(sha) != SHA_BYTES:
        raise ValueError(f"model_sha256 must be hex of at least {SHA_BYTES} bytes")
    values = {**header, "format": header.get("format", FORMAT_VERSION), "model_sha256": sha}
    for key, code in _FIXED_FIELDS:
        if key == "model_sha256" or (key == "bos_id" and bos_id is None):
            continue
        value, top = values[key], (1 << (8 * struct.calcsize(code))) - 1 - (key == "bos_id")  # NO_BOS is taken
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= top:
            raise ValueError(f"{key}={value!r} does not fit the archive header (an integer in [0, {top}])")
    values["bos_id"] = NO_BOS if bos_id is None else bos_id
    out = [_FIXED.pack(*(values[k] for k in _FIXED_KEYS))]
    for name, length in _STRINGS:
        value = header.get(name)
        raw = b"" if value is None else str(value).encode("utf-8")
        top = (1 << (8 * length.size)) - 1
        if len(raw) > top:
            raise ValueError(f"{name} is {len(raw)} bytes in UTF-8; the archive header stores at most {top}")
        out.append(length.pack(len(raw)) + raw)
    return b"".join(out)


def _parse(body: bytes) -> tuple[dict, bytes, bytes]:
    """Header, code and patch of an archive body (magic to patch); ValueError on a bad length or string."""
    if len(body) < len(MAGIC) + _FIXED.size:
        raise ValueError("header truncated")
    header = dict(zip(_FIXED_KEYS, _FIXED.unpack_from(body, len(MAGIC)), strict=True))
    header["model_sha256"] = header["model_sha256"].hex()
    header["bos_id"] = None if header["bos_id"] == NO_BOS else header["bos_id"]
    header["bos"] = header["bos_id"] is not None
    pos = len(MAGIC) + _FIXED.size
    for name, length in _STRINGS:
        if len(body) < pos + length.size:
            raise ValueError("header truncated")
        (n,) = length.unpack_from(body, pos)
        raw = body[pos + length.size : pos + length.size + n]
        if len(raw) != n:
            raise ValueError("header truncated")
        try:
            header[name] = raw.decode("utf-8") or None
        except UnicodeDecodeError:
            raise ValueError(f"the header's {name} is not UTF-8") from None
        pos += length.size + n
    if len(body) < pos + _LENGTH.size:
        raise ValueError("header truncated")
    (c,) = _LENGTH.unpack_from(body, pos)
    pos += _LENGTH.size
    code, patch = body[pos : pos + c], body[pos + c :]
    if len(code) != c:
        raise ValueError("the code length exceeds the file")
    if header["num_tokens"] and (header["window_tokens"] < 1 or header["threads"] < 1):
        raise ValueError("the header's window or thread count is zero")
    return {k: header[k] for k in HEADER_KEYS}, code, patch


def read_header(blob: bytes) -> tuple[dict, bytes, bytes]:
    """Check the framing and checksum of an archive; return (header, code, patch).

    The header is a dict with the keys HEADER_KEYS (see there and the layout comment).

    Raises:
        UserError: (one line) when the data is not an archive, is truncated or corrupt, or has another format
            version.
    """
    if blob[: len(MAGIC)] != MAGIC:
        raise UserError("not an elasticity archive (bad magic bytes)")
    if len(blob) < _MIN_SIZE:
        raise UserError("truncated archive")
    body, (crc,) = blob[: -_LENGTH.size], _LENGTH.unpack(blob[-_LENGTH.size :])
    if zlib.crc32(body) != crc:
        raise UserError("corrupt or truncated archive (checksum mismatch)")
    found = body[len(MAGIC)]
    if found != FORMAT_VERSION:
        raise UserError(f"archive format {found!r} is not supported (this is {FORMAT_VERSION})")
    try:
        return _parse(body)
    except ValueError as error:
        raise UserError(f"corrupt archive ({error})") from None


def decompress_bytes(blob: bytes, model, tokenizer) -> tuple[bytes, dict]:
    """Restore the original bytes of an archive with the model that wrote it; returns (data, stats).

    Raises:
        UserError: on a corrupt or truncated archive, a model whose hash differs from the header's, or
            decoded data that fails the header's checksum.
    """
    start = time.perf_counter()
    header, code, patch = read_header(blob)
    if model_sha256(model, tokenizer)[: 2 * SHA_BYTES] != header["model_sha256"]:
        raise UserError(
            "the model differs from the one that compressed this file (hash mismatch); "
            f"it was family={header.get('family')!r} size={header.get('size')!r} "
            f"checkpoint={header.get('checkpoint')!r}"
        )
    vocab = compression.vocab_size_of(model)
    if vocab != header["vocab_size"] or tokenizer.bos_token_id != header["bos_id"]:
        raise UserError("the model's vocabulary or BOS token differs from the header's")
    decoder, ids, nll_bits = coding.Decoder(code), [], 0.0
    remaining, window = header["num_tokens"], header["window_tokens"]
    try:
        with numerics.torch_threads(header["threads"]), evaluating(model):
            stepper = _Stepper(model, tokenizer.bos_token_id, vocab)
            while remaining:
                n = min(window, remaining)
                pmf = stepper.start_window()
                for k in range(n):
                    token = decoder.decode_symbol(pmf)
                    ids.append(token)
                    nll_bits -= math.log2(pmf[token]) if pmf[token] > 0 else -math.inf
                    if k + 1 < n:
                        pmf = stepper.advance(token)
                remaining -= n
    except ValueError as error:
        raise UserError(f"corrupt archive: {error}") from None
    data = _apply_patch(_detokenize(tokenizer, ids), patch)
    if len(data) != header["num_bytes"] or zlib.crc32(data) != header["crc32"]:
        raise UserError(
            "decoded data fails the checksum: was it compressed on another machine or with other library versions?"
        )
    header_bytes = len(blob) - len(code) - len(patch) - FRAMING_BYTES
    stats = _stats(len(data), len(blob), nll_bits, len(code), len(patch), header_bytes, len(ids))
    stats["seconds"] = round(time.perf_counter() - start, 3)
    return data, stats


def compress_file(
    src: Path,
    dst: Path,
    *,
    family: str = "tiny",
    size: str | None = None,
    checkpoint: str | None = None,
    device: str = "cpu",
) -> dict:
    """Compress `src` into `dst` by arithmetic coding with a model of `family` (or a checkpoint of it).

    Returns:
        stats: bytes_in (original size), bytes_out (archive size), bits_per_byte (8 * archive / original),
        nll_bits (the model's ideal code length of the tokens), overhead_bits (8 * archive - nll_bits),
        code_bits, code_overhead_bits (the coder's share), header_bytes, patch_bytes, num_tokens, seconds.

    Raises:
        UserError: on a missing input, a bad output path, an unknown family/size or a missing checkpoint.
            `dst` is written atomically: it never exists half-written.
    """
    src, dst = files.check_input_output(src, dst)
    checkpoint = str(Path(checkpoint).resolve()) if checkpoint is not None else None
    model, tokenizer = _load_model(family, size, checkpoint, device)
    blob, stats = compress_bytes(
        src.read_bytes(), model, tokenizer, header={"family": family, "size": size, "checkpoint": checkpoint}
    )
    _write_atomically(dst, blob)
    return stats


def decompress_file(src: Path, dst: Path, *, device: str = "cpu") -> dict:
    """Restore the file compressed into `src`, loading the model its header names; write it to `dst`.

    Returns:
        the same stats as `compress_file` (bytes_in is the restored size, bytes_out the archive's).

    Raises:
        UserError: (one line) on a corrupt or truncated archive, a model whose hash differs from the
            header's, or a bad output path; `dst` is then not created.
    """
    src, dst = files.check_input_output(src, dst)
    blob = src.read_bytes()
    header, _, _ = read_header(blob)  # refuse bad files before loading a model
    model, tokenizer = _load_model(header["family"] or "tiny", header["size"], header["checkpoint"], device)
    data, stats = decompress_bytes(blob, model, tokenizer)
    _write_atomically(dst, data)
    return stats
