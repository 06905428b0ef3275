"""Benchmark of the arithmetic coder driven by a tiny model: coded size against NLL, and coding time.

Prints one JSON line. Targets (issue 4): on ~100 KB of held-out text, the code is at most
NLL bits x 1.001 + 64 bits, and coding (quantising the distributions plus arithmetic coding) adds at most
20% to the time of computing the model's next-token distributions.

The model time is that of the pass the coder needs (token by token with a KV cache, exactly
as `elasticity.archive` runs it); the batched log-probability pass of `compression.code_lengths_bits`
is timed too and reported beside it. Both are wall-clock times on a shared machine.

Usage: python benchmarks/coder.py [--bytes 100000] [--size m] [--checkpoint DIR] [--no-decode]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402

from elasticity import archive, coding, compression, data, models  # noqa: E402


def held_out_text(num_bytes: int) -> str:
    """The eval split of the pre-training corpus, documents joined by blank lines, cut to `num_bytes`."""
    out, total = [], 0
    for doc in data.pretraining_corpus("eval"):
        out.append(doc)
        total += len(doc.encode()) + 2
        if total >= num_bytes:
            break
    return "\n\n".join(out).encode()[:num_bytes].decode("utf-8", errors="ignore")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=100_000, help="held-out text size")
    parser.add_argument("--family", default="tiny")
    parser.add_argument("--size", default=None)
    parser.add_argument("--checkpoint", help="a saved model directory to use instead of models.load")
    parser.add_argument("--no-decode", dest="decode", action="store_false", help="skip the decoding pass")
    args = parser.parse_args()

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

    result = {
        "benchmark": "coder",
        "family": args.family,
        "size": args.size or models.default_size(args.family),
        "checkpoint": args.checkpoint,
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
        "model_incremental_s": round(model_s, 2),
        "model_batched_s": round(batched_s, 2),
        "encode_coding_s": round(code_s, 2),
        "encode_overhead": round(code_s / model_s, 4),
        "time_ok": code_s <= 0.2 * model_s,
    }
    if args.decode:
        model_s = code_s = 0.0
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
            }
        )
        result["time_ok"] = result["time_ok"] and code_s <= 0.2 * model_s
    result["torch_threads_default"] = torch.get_num_threads()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
