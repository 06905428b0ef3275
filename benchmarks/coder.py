"""Benchmark of the arithmetic coder driven by a tiny model: coded size against NLL, and coding time.

Prints one JSON line and writes it to benchmarks/latest/coder.json. Targets (issue 4): on ~100 KB of
held-out text, the code is at most NLL bits x 1.001 + 64 bits, and coding (quantising the distributions plus
arithmetic coding) adds at most 20% to the time of computing the model's next-token distributions.

The model time is that of the pass the coder needs (token by token with a KV cache, exactly
as `elasticity.archive` runs it); the batched log-probability pass of `compression.code_lengths_bits`
is timed too and reported beside it. Both are wall-clock times on a shared machine: the record carries the
load average and the process CPU time / wall time of the coding passes (`cpu_per_wall`).

Usage: python benchmarks/coder.py [--bytes 100000] [--size m] [--checkpoint DIR] [--no-decode]
       [--no-write | --output PATH]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import math
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402

from elasticity import archive, coding, compression, models  # noqa: E402
from elasticity.experiments import compression_with_models_units  # noqa: E402
from elasticity.machine import describe as describe_machine  # noqa: E402

LATEST = Path(__file__).resolve().parent / "latest" / "coder.json"


def held_out_text(num_bytes: int) -> str:
    """The held-out text coded: the eval documents of the pre-training corpus, cut to `num_bytes`."""
    return compression_with_models_units.held_out_text("pretraining-corpus", num_bytes)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=100_000, help="held-out text size")
    parser.add_argument("--family", default="tiny")
    parser.add_argument("--size", default=None)
    parser.add_argument("--checkpoint", help="a saved model directory to use instead of models.load")
    parser.add_argument("--no-decode", dest="decode", action="store_false", help="skip the decoding pass")
    parser.add_argument("--output", type=Path, default=LATEST, help=f"JSON file to write (default {LATEST})")
    parser.add_argument("--no-write", action="store_true", help="print the JSON line only")
    args = parser.parse_args(argv)
    if args.bytes < 1:
        parser.error("--bytes must be positive")
    return args


def main(argv=None) -> dict:
    import transformers

    args = parse_args(argv)
    load_start = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    if args.checkpoint:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(args.checkpoint, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    else:
        model, tokenizer = models.load(args.family, size=args.size)
    model.eval()
    text = held_out_text(args.bytes)
    raw = text.encode()
    ids = compression.tokenize(tokenizer, [text])[0]
    window = compression.window_tokens_for(model)
    vocab = compression.vocab_size_of(model)

    start = time.perf_counter()
    batched_bits = float(compression.code_lengths_bits(model, tokenizer, [text])[0])
    batched_s = time.perf_counter() - start

    # Encode, timing the model's steps and the coder's work separately in the same loop.
    model_s = code_s = 0.0
    nll_bits = 0.0
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    encoder = coding.Encoder()
    stepper = archive._Stepper(model, tokenizer.bos_token_id, vocab)
    for win in compression.windows(ids, window):
        t0 = time.perf_counter()
        pmf = stepper.start_window()
        model_s += time.perf_counter() - t0
        for k, token in enumerate(win):
            t0 = time.perf_counter()
            encoder.encode_symbol(token, pmf)
            code_s += time.perf_counter() - t0
            nll_bits -= math.log2(pmf[token])
            if k + 1 < len(win):
                t0 = time.perf_counter()
                pmf = stepper.advance(token)
                model_s += time.perf_counter() - t0
    t0 = time.perf_counter()
    code = encoder.finish()
    code_s += time.perf_counter() - t0
    encode_cpu_per_wall = (time.process_time() - cpu_start) / (time.perf_counter() - wall_start)
    names = {"family": args.family, "size": args.size, "checkpoint": args.checkpoint}
    header_bytes = len(archive.encode_header(archive.header_record(raw, len(ids), model, tokenizer, window, vocab,
                                                                   names)))

    result = {
        "benchmark": "coder",
        "family": args.family,
        "size": args.size or (None if args.checkpoint else models.default_size(args.family)),
        "checkpoint": args.checkpoint,
        "model_parameters": sum(p.numel() for p in model.parameters()),
        "bytes": len(raw),
        "tokens": len(ids),
        "vocab": vocab,
        "window_tokens": window,
        "nll_bits": round(nll_bits, 1),
        "batched_nll_bits": round(batched_bits, 1),
        "code_bits": 8 * len(code),
        "size_limit_bits": round(nll_bits * 1.001 + 64, 1),
        "code_minus_nll_bits": round(8 * len(code) - nll_bits, 1),
        "size_ok": 8 * len(code) <= nll_bits * 1.001 + 64,
        "bits_per_byte": round(8 * len(code) / len(raw), 4),
        "archive_header_and_framing_bytes": header_bytes + archive.FRAMING_BYTES,
        "model_incremental_s": round(model_s, 2),
        "model_batched_s": round(batched_s, 2),
        "encode_coding_s": round(code_s, 2),
        "encode_overhead": round(code_s / model_s, 4),
        "time_ok": code_s <= 0.2 * model_s,
        "encode_cpu_per_wall": round(encode_cpu_per_wall, 2),
    }
    if args.decode:
        model_s = code_s = 0.0
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        decoder, out = coding.Decoder(code), []
        stepper = archive._Stepper(model, tokenizer.bos_token_id, vocab)
        remaining = len(ids)
        while remaining:
            n = min(window, remaining)
            t0 = time.perf_counter()
            pmf = stepper.start_window()
            model_s += time.perf_counter() - t0
            for k in range(n):
                t0 = time.perf_counter()
                token = decoder.decode_symbol(pmf)
                code_s += time.perf_counter() - t0
                out.append(token)
                if k + 1 < n:
                    t0 = time.perf_counter()
                    pmf = stepper.advance(token)
                    model_s += time.perf_counter() - t0
            remaining -= n
        result.update(
            {
                "decoded_ok": out == ids,
                "decode_model_s": round(model_s, 2),
                "decode_coding_s": round(code_s, 2),
                "decode_overhead": round(code_s / model_s, 4),
                "decode_cpu_per_wall": round((time.process_time() - cpu_start) / (time.perf_counter() - wall_start), 2),
            }
        )
        result["time_ok"] = result["time_ok"] and code_s <= 0.2 * model_s
    result.update(
        {
            "threads": torch.get_num_threads(),
            "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "load_average": {"start": load_start, "end": [round(x, 2) for x in os.getloadavg()]},
            "wall_s": round(time.perf_counter() - started, 1),
            "machine": describe_machine(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "coder_source": {
                "path": "elasticity/coding.py",
                "sha256": hashlib.sha256(Path(coding.__file__).read_bytes()).hexdigest()[:16],
            },
        }
    )
    print(json.dumps(result))
    if not args.no_write:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
