"""Tests of elasticity.numerics: the pinned kernel level wins over the environment, and results record it."""

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest
import torch

from elasticity import numerics, results

# One small training unit in a fresh process: a seeded tiny Llama fine-tuned for a few steps (the path every
# training unit takes); prints the kernel level and a hash of the final loss and every weight.
UNIT = textwrap.dedent("""
    import hashlib, sys
    sys.path.insert(0, sys.argv[1])
    import torch
    from conftest import EXAMPLES, make_model, make_tokenizer
    from elasticity import finetune
    tokenizer = make_tokenizer()
    cfg = finetune.FinetuneConfig(learning_rate=1e-3, epochs=3.0, batch_size=2, max_length=32, seed=0, lora=False)
    result = finetune.finetune(make_model(tokenizer, hidden_size=64), tokenizer, EXAMPLES, cfg, progress=False)
    digest = hashlib.sha256(repr(result.losses).encode())
    for parameter in result.model.parameters():
        digest.update(parameter.detach().numpy().tobytes())
    print(torch.backends.cpu.get_cpu_capability(), digest.hexdigest())
""")
TESTS_DIR = os.path.dirname(__file__)


def _fresh_process(code: str, argument: str, **env) -> list[str]:
    """The last two words `code` prints in a fresh process whose environment has none of the pinned switches nor
    the opt-out, besides `env`."""
    clean = {k: v for k, v in os.environ.items() if k not in (*numerics.PINNED, numerics.OPT_OUT)}
    done = subprocess.run([sys.executable, "-c", code, argument], env={**clean, **env}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()[-2:]


def _run_unit(**env) -> tuple[str, str]:
    capability, digest = _fresh_process(UNIT, TESTS_DIR, **env)
    return capability, digest


@pytest.mark.slow
@pytest.mark.skipif(not numerics.applies(), reason="pinning applies on x86-64 Linux")
def test_the_pinned_level_wins_over_what_a_process_inherits():
    inherited = _run_unit(ATEN_CPU_CAPABILITY="default")
    nothing_set = _run_unit()
    assert inherited == nothing_set
    assert inherited[0] == numerics.PINNED_CAPABILITY
    # the test can fail: opted out, the two levels give other numbers (here the machine's own level differs from
    # the portable default one, as on every x86-64 machine with AVX2)
    native_default = _run_unit(ATEN_CPU_CAPABILITY="default", ELASTICITY_NATIVE_KERNELS="1")
    assert native_default[0] == "DEFAULT"
    assert native_default[1] != nothing_set[1]


# A unit whose numbers depend on the thread count: a mean over a million floats, which torch splits across its
# threads (1 and 2 threads differ in the last digits); prints the mean exactly and the threads it ran with.
THREADED_UNIT = textwrap.dedent("""
    import pathlib, sys
    from dataclasses import dataclass
    import elasticity
    import torch
    from elasticity import results

    @dataclass(frozen=True)
    class Config:
        n: int = 1_000_003

    def mean_square(cfg):
        x = torch.randn(cfg.n, generator=torch.Generator().manual_seed(0))
        return {"mean_square": (x * x).mean().item(), "threads": torch.get_num_threads()}

    out = results.load_or_run("probe", Config(), mean_square, cache=pathlib.Path(sys.argv[1]))
    print(float(out["mean_square"]).hex(), out["threads"])
""")


def _run_threaded_unit(cache, **env) -> tuple[str, int]:
    mean, threads = _fresh_process(THREADED_UNIT, str(cache), **env)
    return mean, int(threads)


@pytest.mark.slow
@pytest.mark.skipif(os.cpu_count() < 2, reason="the control needs two threads on two cores")
def test_every_unit_computes_with_the_pinned_thread_count_whatever_it_inherits(tmp_path):
    one = _run_threaded_unit(tmp_path / "a", OMP_NUM_THREADS="1")
    nothing_set = _run_threaded_unit(tmp_path / "b")
    assert one == nothing_set and one[1] == numerics.THREADS
    # the test can fail: opted out, the inherited thread count computes the unit, and 1 and 2 threads differ
    native_one = _run_threaded_unit(tmp_path / "c", OMP_NUM_THREADS="1", ELASTICITY_NATIVE_KERNELS="1")
    native_two = _run_threaded_unit(tmp_path / "d", OMP_NUM_THREADS="2", ELASTICITY_NATIVE_KERNELS="1")
    assert (native_one[1], native_two[1]) == (1, 2)
    assert native_one[0] != native_two[0]


def test_a_unit_computes_with_the_pinned_threads_and_restores_the_count_after(tmp_path):
    seen = []
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results.load_or_run("probe", Config(seed=1), lambda cfg: seen.append(torch.get_num_threads()) or {},
                            cache=tmp_path)
        assert seen == [numerics.THREADS] and torch.get_num_threads() == 1
        record = results.load_provenance("probe", Config(seed=1), lambda cfg: {}, cache=tmp_path)
    finally:
        torch.set_num_threads(before)
    assert record["numerics"]["torch_threads"] == numerics.THREADS


@pytest.mark.skipif(not numerics.applies(), reason="pinning applies on x86-64 Linux")
def test_this_process_computes_at_the_pinned_level():
    assert torch.backends.cpu.get_cpu_capability() == numerics.PINNED_CAPABILITY
    assert all(os.environ[name] == value for name, value in numerics.PINNED.items())
    numerics.check()


@pytest.mark.skipif(not numerics.applies(), reason="pinning applies on x86-64 Linux")
def test_nothing_is_cached_from_a_process_where_torch_computed_first(tmp_path):
    # the libraries read their switch when they first compute, not when they are imported
    code = textwrap.dedent("""
        import torch
        torch.ones(3) + 1
        import elasticity
        from dataclasses import dataclass
        from elasticity import numerics, results
        @dataclass(frozen=True)
        class Config:
            seed: int = 0
        try:
            results.load_or_run("probe", Config(), lambda cfg: {"x": 1}, cache=__import__("pathlib").Path(CACHE))
        except numerics.NumericsError as error:
            print("refused:", error)
    """).replace("CACHE", repr(str(tmp_path)))
    env = {k: v for k, v in os.environ.items() if k not in numerics.PINNED} | {"ATEN_CPU_CAPABILITY": "default"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.startswith("refused: torch computes with DEFAULT kernels, not AVX2: import elasticity "
                                  "before torch computes"), done.stderr[-2000:]
    assert not (tmp_path / "results" / "probe").exists() or not any((tmp_path / "results" / "probe").iterdir())


@dataclass(frozen=True)
class Config:
    seed: int = 0


def _compute(cfg: Config) -> dict:
    return {"seed": cfg.seed}


def test_provenance_names_what_identity_depends_on(tmp_path):
    results.load_or_run("probe", Config(), _compute, cache=tmp_path)
    record = results.load_provenance("probe", Config(), _compute, cache=tmp_path)["numerics"]
    assert record["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert record["torch_threads"] == numerics.THREADS
    assert record["torch"] == torch.__version__ and record["cpu"]
    assert set(record) >= {"pinned", "aten_cpu_capability", "mkl_cbwr", "onednn_max_cpu_isa", "omp_num_threads",
                           "mkl"}


def test_a_process_without_torch_is_not_made_to_import_it():
    code = ("import sys; from elasticity import numerics; numerics.check(); state = numerics.state(); "
            "print('torch' in sys.modules, state['cpu_capability'], state['aten_cpu_capability'])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    pinned = numerics.PINNED["ATEN_CPU_CAPABILITY"] if numerics.applies() else "None"
    assert done.stdout.split() == ["False", "None", pinned]
