"""Tests of elasticity.finetune: SFT changes what it should, is seeded, resumable, refuses NaN."""

import math
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import EXAMPLES, make_model

from elasticity import finetune
from elasticity.config import UserError
from elasticity.data import Example


def cfg(**overrides) -> finetune.FinetuneConfig:
    base = dict(learning_rate=1e-2, epochs=2.0, batch_size=2, max_length=64, seed=0)
    return finetune.FinetuneConfig(**{**base, **overrides})


def params(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_encode_masks_prompt_and_appends_eos(tiny_tokenizer):
    (ids, labels), (plain_ids, plain_labels) = finetune.encode(tiny_tokenizer, [EXAMPLES[0], EXAMPLES[2]], 64)
    prompt = tiny_tokenizer(EXAMPLES[0].prompt)["input_ids"]
    assert ids[: len(prompt)] == prompt and ids[0] == tiny_tokenizer.bos_token_id
    assert labels[: len(prompt)] == [finetune.IGNORE] * len(prompt)
    assert labels[len(prompt) :] == ids[len(prompt) :] and ids[-1] == tiny_tokenizer.eos_token_id
    assert tiny_tokenizer.decode(ids, skip_special_tokens=True) == EXAMPLES[0].text
    assert plain_labels == plain_ids  # empty prompt: every token is trained on
    (short, short_labels), = finetune.encode(tiny_tokenizer, [EXAMPLES[0]], 5)
    assert len(short) == len(short_labels) == 5


def test_full_finetune_changes_every_parameter_and_lowers_loss(tiny_model, tiny_tokenizer):
    before = params(tiny_model)
    loss_before = finetune.mean_loss(tiny_model, tiny_tokenizer, EXAMPLES, max_length=64)
    out = finetune.finetune(tiny_model, tiny_tokenizer, EXAMPLES, cfg(epochs=3.0), progress=False)
    after = params(out.model)
    unchanged = [n for n in before if torch.equal(before[n], after[n])]
    assert unchanged == []
    assert len(out.losses) == 9 and all(math.isfinite(v) for v in out.losses)
    assert out.final_loss == out.losses[-1]
    assert finetune.mean_loss(out.model, tiny_tokenizer, EXAMPLES, max_length=64) < loss_before


def test_lora_changes_only_adapters(tiny_model, tiny_tokenizer):
    before = params(tiny_model)
    out = finetune.finetune(tiny_model, tiny_tokenizer, EXAMPLES, cfg(lora=True, lora_r=4), progress=False)
    after = dict(out.model.named_parameters())
    adapters = {n for n in after if "lora_" in n}
    assert adapters and all(after[n].requires_grad for n in adapters)
    assert all(not p.requires_grad for n, p in after.items() if n not in adapters)
    for name, value in after.items():
        if name in adapters:
            if "lora_B" in name or "lora_A" in name:
                assert value.abs().sum() > 0
        else:
            base_name = name.replace("base_model.model.", "").replace(".base_layer", "")
            assert torch.equal(value, before[base_name]), name
    # every adapter moved from its initial value (lora_B starts at zero; lora_A is random)
    fresh = finetune.finetune(make_model(tiny_tokenizer), tiny_tokenizer, EXAMPLES[:2],
                              cfg(lora=True, lora_r=4, epochs=0.5), progress=False)
    assert all(fresh.model.get_parameter(n).abs().sum() > 0 for n in adapters if "lora_B" in n)


def test_same_seed_bitwise_identical_losses(tiny_tokenizer):
    runs = [finetune.finetune(make_model(tiny_tokenizer), tiny_tokenizer, EXAMPLES, cfg(epochs=3.0),
                              progress=False) for _ in range(2)]
    assert runs[0].losses == runs[1].losses
    assert all(torch.equal(a, b) for a, b in zip(runs[0].model.parameters(), runs[1].model.parameters(),
                                                  strict=True))
    other = finetune.finetune(make_model(tiny_tokenizer), tiny_tokenizer, EXAMPLES, cfg(epochs=3.0, seed=1),
                              progress=False)
    assert other.losses[:3] == runs[0].losses[:3]  # epoch 0 keeps the given order
    assert other.losses != runs[0].losses  # later epochs are permuted by the seed


@pytest.mark.parametrize("lora", [False, True])
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, tiny_tokenizer, lora):
    config = cfg(epochs=3.0, lora=lora, checkpoint_fractions=(1 / 3, 2 / 3, 1.0))
    whole = finetune.finetune(make_model(tiny_tokenizer), tiny_tokenizer, EXAMPLES, config,
                              output_dir=tmp_path / "whole", progress=False)

    class Stop(Exception):
        pass

    def stop_at_5(step, loss):
        if step == 5:
            raise Stop

    with pytest.raises(Stop):
        finetune.finetune(make_model(tiny_tokenizer), tiny_tokenizer, EXAMPLES, config,
                          output_dir=tmp_path / "resumed", progress=False, on_step=stop_at_5)
    assert (tmp_path / "resumed" / "state" / "state.pt").is_file()
    resumed = finetune.finetune(make_model(tiny_tokenizer), tiny_tokenizer, EXAMPLES, config,
                                output_dir=tmp_path / "resumed", progress=False)
    assert resumed.losses == whole.losses
    for a, b in zip(whole.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert not (tmp_path / "resumed" / "state").exists()
    assert [p.name for p in resumed.checkpoints] == ["checkpoint-01", "checkpoint-02", "checkpoint-03"]


@pytest.mark.parametrize("lora", [False, True])
def test_checkpoints_reload_as_the_model_at_that_step(tmp_path, tiny_tokenizer, lora):
    config = cfg(epochs=1.0, lora=lora, checkpoint_fractions=(1 / 3, 1.0))
    out = finetune.finetune(make_model(tiny_tokenizer), tiny_tokenizer, EXAMPLES, config,
                            output_dir=tmp_path, progress=False)
    first, last = out.checkpoints
    assert finetune.checkpoint_steps(3, config.checkpoint_fractions) == [1, 3]
    # a one-step run on the first batch ends where the first checkpoint was taken
    one = finetune.finetune(make_model(tiny_tokenizer), tiny_tokenizer, EXAMPLES[:2],
                            cfg(epochs=1.0, lora=lora), progress=False)
    loaded, tok = finetune.load_checkpoint(first)
    batch = tiny_tokenizer(["the film is a delight"], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(loaded(**batch).logits, one.model(**batch).logits)
        final, _ = finetune.load_checkpoint(last)
        assert torch.equal(final(**batch).logits, out.model(**batch).logits)
    assert tok.pad_token_id == tiny_tokenizer.pad_token_id
    assert any(p.requires_grad for p in loaded.parameters())


def test_nan_loss_stops_and_keeps_last_good(tmp_path, tiny_model, tiny_tokenizer):
    def poison(step, loss):
        if step == 2:
            with torch.no_grad():
                tiny_model.model.norm.weight.fill_(float("nan"))

    good = None

    def remember(step, loss):
        nonlocal good
        if step == 2:
            good = params(tiny_model)
        poison(step, loss)

    config = cfg(epochs=3.0, checkpoint_fractions=(1 / 9,))
    with pytest.raises(finetune.LossNotFinite, match="became nan at step 3 of 9.*last-good"):
        finetune.finetune(tiny_model, tiny_tokenizer, EXAMPLES, config, output_dir=tmp_path, progress=False,
                          on_step=remember)
    assert (tmp_path / "checkpoint-01").is_dir()  # earlier checkpoints are kept
    assert (tmp_path / "last-good").is_dir()
    assert isinstance(finetune.LossNotFinite("x"), UserError)


def test_bad_config_and_input_are_refused(tiny_model, tiny_tokenizer):
    for bad in (dict(learning_rate=0.0), dict(epochs=-1.0), dict(batch_size=0), dict(max_length=1),
                dict(checkpoint_fractions=(0.5, 0.2)), dict(checkpoint_fractions=(1.5,)), dict(seed="0")):
        with pytest.raises(UserError, match="FinetuneConfig"):
            cfg(**bad)
    with pytest.raises(UserError, match="output_dir"):
        finetune.finetune(tiny_model, tiny_tokenizer, EXAMPLES, cfg(checkpoint_fractions=(1.0,)), progress=False)
    with pytest.raises(UserError, match="at least one example"):
        finetune.finetune(tiny_model, tiny_tokenizer, [], cfg(), progress=False)


def test_schedule():
    c = cfg(batch_size=4, epochs=1.5)
    assert finetune.num_steps(10, c) == 4  # round(1.5 * ceil(10 / 4)) = round(4.5) = 4 (banker's)
    assert finetune.batch_indices(0, 10, c) == [0, 1, 2, 3]
    assert finetune.batch_indices(2, 10, c) == [8, 9]
    assert sorted(finetune.batch_indices(3, 10, c) + finetune.batch_indices(4, 10, c)
                  + finetune.batch_indices(5, 10, c)) == list(range(10))
    assert finetune.checkpoint_steps(9, (1 / 3, 2 / 3, 1.0)) == [3, 6, 9]
    assert finetune.checkpoint_steps(10, (0.01, 0.5)) == [1, 5]


ACCELERATE_SCRIPT = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {tests!r})
    from conftest import make_model, make_tokenizer
    from elasticity import finetune
    from test_finetune import EXAMPLES, cfg
    tok = make_tokenizer()
    out = finetune.finetune(make_model(tok), tok, EXAMPLES * 2, cfg(batch_size=4, epochs=2.0), progress=False)
    import os
    if int(os.environ.get("RANK", "0")) == 0:
        torch.save({{"losses": out.losses, "params": {{n: p.detach() for n, p in out.model.named_parameters()}}}},
                   {out!r})
""")


@pytest.mark.slow
def test_two_process_accelerate_run_matches_one_process(tmp_path):
    """`accelerate launch --num_processes 2 --cpu` gives the one-process result within 1e-5 (float32 sums
    in another order): losses to a relative 1e-5, weights to an absolute 1e-5."""
    import pathlib

    tests = str(pathlib.Path(__file__).parent)
    results = {}
    for procs in (1, 2):
        out = tmp_path / f"p{procs}.pt"
        script = tmp_path / f"run{procs}.py"
        script.write_text(ACCELERATE_SCRIPT.format(tests=tests, out=str(out)))
        command = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", str(procs),
                   "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(script)]
        if procs == 1:
            command = [sys.executable, str(script)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                              env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
        assert done.returncode == 0, done.stderr[-3000:]
        results[procs] = torch.load(out)
    one, two = results[1], results[2]
    assert len(one["losses"]) == len(two["losses"]) == 6
    for a, b in zip(one["losses"], two["losses"], strict=True):
        assert abs(a - b) <= 1e-5 * abs(a)
    for name, value in one["params"].items():
        assert torch.allclose(value, two["params"][name], rtol=0, atol=1e-5), name



PACKABLE = [Example("the film is", " a delight from start to finish."), Example("", "the quick brown fox."),
      Example("a dull,", " plodding mess."), Example("pack my box", " with five dozen liquor jugs.")] * 3


def test_token_nll_sum_matches_the_models_own_causal_lm_loss(tiny_tokenizer):
    pairs = finetune.encode(tiny_tokenizer, PACKABLE[:4], 32)
    batch = finetune.collate(pairs, tiny_tokenizer.pad_token_id, "cpu")
    model = make_model(tiny_tokenizer)
    nll, count = finetune.token_nll_sum(model, batch)
    reference = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
    counted = (batch["labels"][:, 1:] != finetune.IGNORE).sum()  # transformers' mean is over these targets
    assert int(count) == int(counted) and torch.allclose(nll / count, reference.loss, rtol=1e-6)


def test_packed_batch_gives_the_padded_loss_and_gradient(tiny_tokenizer):
    pairs = finetune.encode(tiny_tokenizer, PACKABLE, 32)
    model = make_model(tiny_tokenizer)
    a, na = finetune.token_nll_sum(model, finetune.collate(pairs, tiny_tokenizer.pad_token_id, "cpu"))
    (a / na).backward()
    ga = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    b, nb = finetune.token_nll_sum(model, finetune.collate_packed(pairs, tiny_tokenizer.pad_token_id, "cpu", 64))
    (b / nb).backward()
    assert int(na) == int(nb) and torch.allclose(a, b, rtol=1e-5)
    assert all(torch.allclose(x, p.grad, rtol=1e-4, atol=1e-6) for x, p in zip(ga, model.parameters(), strict=True))


def test_packed_and_padded_runs_train_alike(tiny_tokenizer):
    cfg = dict(learning_rate=1e-2, epochs=2.0, batch_size=4, max_length=32, seed=0)
    runs = [finetune.finetune(make_model(tiny_tokenizer), tiny_tokenizer, PACKABLE,
                              finetune.FinetuneConfig(**cfg, pack=p), progress=False).losses for p in (True, False)]
    assert all(abs(x - y) < 1e-3 for x, y in zip(*runs, strict=True))
