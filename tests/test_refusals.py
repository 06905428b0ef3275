"""Bad input across the verbs of `elasticity`, as a user gives it: the table of benchmarks/refusals.py.

Each case must be refused with one line naming what was wrong, exit code 2, no traceback, nothing written and
its inputs untouched. The time each takes is measured by the benchmark, not asserted here.
"""

import pytest
from conftest import load_script

refusals = load_script("benchmarks/refusals.py", "bench_refusals")

ALL = refusals.CASES + refusals.LATER_CASES


def test_the_table_covers_every_verb_with_at_least_thirty_cases():
    assert len(refusals.CASES) >= 30
    verbs = {argv[0] for argv, _ in ALL}
    assert verbs >= {"run", "compute", "book", "status", "pretrain", "finetune", "compress", "decompress"}


@pytest.mark.parametrize("argv, message", ALL, ids=[" ".join(a) for a, _ in ALL])
def test_bad_input_is_one_line_exit_2_and_touches_nothing(tmp_path, argv, message):
    places = refusals.prepare(tmp_path)
    before = refusals.contents(tmp_path)
    got = refusals.refuse(argv, places, tmp_path)
    assert got.code == 2, got.err
    assert got.err.count("\n") == 1 and "error: " in got.err and "Traceback" not in got.err
    assert message.format(**places) in got.err
    assert refusals.contents(tmp_path) == before  # nothing written, the inputs as they were
    assert not got.torch_imported  # refused before the heavy imports
