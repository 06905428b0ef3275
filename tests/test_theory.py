"""Tests of elasticity.theory: symbolic derivatives, limits, signs, numeric versions, Monte Carlo."""

import dataclasses
import math
import sys

import mpmath
import numpy as np
import pytest
import sympy as sp

from elasticity import config, theory
from elasticity.theory import H, d, f, k, l

RNG = np.random.default_rng(20250611)


def _central_difference(fn, x, h):
    return (fn(x + h) - fn(x - h)) / (2 * h)


def _random_points(n: int):
    """Random (k, l, depth, H_1, H_2, H_3) with k in [2, 1e6], l in (0, 0.45], depth in 1..12."""
    for _ in range(n):
        yield (
            float(10 ** RNG.uniform(0.3, 6)),
            float(RNG.uniform(0.01, 0.45)),
            int(RNG.integers(1, 13)),
            *RNG.uniform(0.1, 5, size=3),
        )


@pytest.mark.parametrize("equal_parts", [True, False])
def test_derivatives_match_central_finite_differences(equal_parts):
    # mpmath at 50 digits: for k = 1e6 the derivative of gamma_p is ~1e-12 of gamma_p itself
    e = theory.elasticity(equal_parts)
    args = (k, l, d, *H, f[1], f[2])
    with mpmath.workdps(50):
        for k_, l_, d_, h1, h2, h3 in _random_points(15):
            f2, f3 = RNG.dirichlet([1, 1, 1])[1:]
            at = dict(zip(args, map(mpmath.mpf, (k_, l_, d_, h1, h2, h3, f2, f3)), strict=True))
            for exact, rate in ((e.dgamma_p_dl, e.gamma_p), (e.dgamma_a_dl, e.gamma_a)):
                fn = sp.lambdify(l, rate.subs({s: v for s, v in at.items() if s != l}), "mpmath")
                numeric = _central_difference(fn, at[l], mpmath.mpf("1e-15"))
                assert float(numeric) == pytest.approx(float(exact.subs(at)), rel=1e-9)


def test_closed_forms_are_the_digest_table():
    e = theory.elasticity(True)
    assert sp.simplify(e.dgamma_a_dl - 1 / (d * (k + l + 1))) == 0
    assert sp.simplify(e.dgamma_p_dl - (2 * l - 1) / (d * (k + 3 * l) * (k + l + 1))) == 0
    assert sp.simplify(e.ratio + (k + 3 * l) / (1 - 2 * l)) == 0
    assert e.sign_change_l == sp.Rational(1, 2)
    g = theory.elasticity(False)
    f3 = f[2]
    assert sp.simplify(g.ratio + (f3 * k + l) / (f3 * (1 + l) - l)) == 0
    assert sp.simplify(g.sign_change_l - f3 / (1 - f3)) == 0


@pytest.mark.parametrize("equal_parts", [True, False])
def test_ratio_limit_is_minus_k(equal_parts):
    e = theory.elasticity(equal_parts)
    assert sp.simplify(e.ratio_limit + k) == 0
    assert sp.simplify(sp.limit(e.force_balance, l, 0)) == 0
    for k_ in (10.0, 1e3, 1e6):
        assert theory.elasticity_ratio(k_, 1e-12) == pytest.approx(-k_, rel=1e-9)


def test_signs_over_a_grid():
    for k_ in np.logspace(0.5, 6, 12):
        for l_ in np.linspace(1e-4, 0.499, 15):
            dgamma_p, dgamma_a = theory.elasticity_derivatives(float(k_), float(l_))
            assert dgamma_p < 0 < dgamma_a
        for l_ in np.linspace(0.501, 5, 6):
            dgamma_p, dgamma_a = theory.elasticity_derivatives(float(k_), float(l_))
            assert dgamma_p > 0 and dgamma_a > 0


def test_elasticity_derivatives_match_symbolic_subs():
    e = theory.elasticity(True)
    for k_, l_, d_, *_ in _random_points(10):
        at = {k: sp.Rational(k_), l: sp.Rational(l_), d: d_}
        got_p, got_a = theory.elasticity_derivatives(k_, l_, d_)
        assert got_p == pytest.approx(float(e.dgamma_p_dl.subs(at)), rel=1e-12)
        assert got_a == pytest.approx(float(e.dgamma_a_dl.subs(at)), rel=1e-12)
    # the contract's default: nats per pruned block, the digest's closed forms
    got_p, got_a = theory.elasticity_derivatives(1e3, 0.01)
    assert got_p == pytest.approx((2 * 0.01 - 1) / ((1e3 + 0.03) * (1e3 + 1.01)), rel=1e-12)
    assert got_a == pytest.approx(1 / (1e3 + 1.01), rel=1e-12)
    with pytest.raises(config.UserError):
        theory.elasticity_derivatives(-1.0, 0.1)


def test_rate_changes_exact_and_hookean():
    for k_, l_ in ((10.0, 0.01), (50.0, 0.2)):
        dp, da = theory.rate_changes(k_, l_)
        w = lambda kk, ll: (kk / 3 + ll) / (kk + ll + 1)  # noqa: E731
        assert da == pytest.approx(math.log((k_ + l_ + 1) / (k_ + 1)), rel=1e-12)
        expected_p = (2 / 3) * math.log((k_ + l_ + 1) / (k_ + 1)) + math.log(w(k_, 0) / w(k_, l_)) / 3
        assert dp == pytest.approx(expected_p, rel=1e-9)
    # k = 1e6: |D_p| dgamma_p = -|D_a| dgamma_a to first order in l, even though dgamma_p ~ 1e-15
    dp, da = theory.rate_changes(1e6, 1e-3)
    assert 1e6 * dp == pytest.approx(-da, rel=1e-2)


def test_force_balance_holds_for_overlapping_leaves():
    fb = theory.force_balance(2, 3)
    assert fb.derivative_residual == 0
    assert fb.total_force_residual == 0
    assert fb.total_force_at_0 == 0


@pytest.mark.parametrize("normalization", sorted(theory.NORMALIZATIONS))
def test_normalization_does_not_change_derivatives(normalization):
    e = theory.elasticity(True)
    rate = theory.normalized_rate(e.gamma_a, normalization)
    assert sp.simplify(sp.diff(rate, l) - e.dgamma_a_dl) == 0
    with pytest.raises(config.UserError):
        theory.normalized_rate(e.gamma_a, "log_n")


def test_leaf_rates_normalization_subtracts_log_leaves_per_token():
    parts = RNG.dirichlet(np.ones(5), size=3)  # M = 5 leaves
    plain = theory.leaf_rates(parts, 10.0, 0.01, depth=4, normalization="none")
    per_token = theory.leaf_rates(parts, 10.0, 0.01, depth=4, normalization="log-leaves")
    per_block = theory.leaf_rates(parts, 10.0, 0.01, depth=4, normalization="log-leaves-per-block")
    for name in ("gamma_p", "gamma_a"):
        assert per_token[name] == pytest.approx(plain[name] - math.log(5) / 4)
        assert per_block[name] == pytest.approx(plain[name] - math.log(5))
    assert per_token["dgamma_a_dl"] == plain["dgamma_a_dl"]


def test_leaf_rates_derivatives_match_finite_differences_with_overlap():
    parts = RNG.dirichlet(np.ones(7), size=3)  # every part on every leaf: maximal overlap
    for k_, l_ in ((5.0, 0.1), (40.0, 0.02)):
        rates = theory.leaf_rates(parts, k_, l_, depth=3)
        for name in ("p", "a"):
            gamma = lambda x, name=name, k_=k_: theory.leaf_rates(parts, k_, x, 3)[f"gamma_{name}"]  # noqa: E731
            assert rates[f"dgamma_{name}_dl"] == pytest.approx(_central_difference(gamma, l_, 1e-6), rel=1e-6)
            assert rates[f"delta_gamma_{name}"] == pytest.approx(gamma(l_) - gamma(0.0), rel=1e-9)


def test_leaf_rates_disjoint_equal_closed_form():
    parts = np.zeros((3, 9))
    for i in range(3):
        parts[i, 3 * i : 3 * i + 3] = RNG.dirichlet(np.ones(3))
    for k_, l_ in ((10.0, 0.001), (1e3, 0.3), (1e6, 0.01)):
        rates = theory.leaf_rates(parts, k_, l_, depth=4)
        closed_p, closed_a = theory.elasticity_derivatives(k_, l_, 4)
        assert rates["dgamma_p_dl"] == pytest.approx(closed_p, rel=1e-8)
        assert rates["dgamma_a_dl"] == pytest.approx(closed_a, rel=1e-8)
        delta_p, delta_a = theory.rate_changes(k_, l_, 4)
        assert rates["delta_gamma_p"] == pytest.approx(delta_p, rel=1e-6)
        assert rates["delta_gamma_a"] == pytest.approx(delta_a, rel=1e-9)
        assert rates["overlap_a_t"] == 0


SMALL = dataclasses.replace(
    theory.PRESETS["smoke"], ks=(10.0, 1e3, 1e6), ls=(1e-3, 0.3), depths=(8, 16), num_trees=2
)


def test_monte_carlo_against_closed_form():
    table = theory.run_monte_carlo(SMALL)
    assert len(table) == 2 * 2 * 3 * 2
    disjoint = table[table.depth == SMALL.response_length]
    # at full depth the parts are disjoint: the closed form holds to float precision
    assert np.allclose(disjoint.ratio, disjoint.ratio_closed_form, rtol=1e-8)
    assert np.allclose(disjoint.dgamma_a_dl, disjoint.dgamma_a_dl_closed_form, rtol=1e-8)
    # pruned at depth 8 the supports overlap; at small l the ratio still stays within 1% of the
    # closed form (force balance), while the rates themselves move less than the closed form says
    overlapped = table[table.depth == 8]
    assert (overlapped.shared_leaves > 0.5).all()
    small_l = overlapped[overlapped.l == 1e-3]
    assert np.allclose(small_l.ratio, small_l.ratio_closed_form, rtol=0.01)
    assert (overlapped.dgamma_a_dl < overlapped.dgamma_a_dl_closed_form).all()
    assert (overlapped.dgamma_a_dl > 0).all() and (overlapped.dgamma_p_dl < 0).all()


def test_monte_carlo_is_seeded():
    a = theory.run_monte_carlo(SMALL)
    b = theory.run_monte_carlo(SMALL)
    c = theory.run_monte_carlo(dataclasses.replace(SMALL, seed=1))
    assert a.equals(b)
    assert not np.allclose(a.overlap_a_t, c.overlap_a_t)


def test_monte_carlo_cache_keeps_tiny_values(tmp_path):
    tiny = dataclasses.replace(SMALL, depths=(16,), ls=(1e-3,), num_trees=1)
    direct = theory.run_monte_carlo(tiny)
    first = theory.load_or_run_monte_carlo(tiny, cache=tmp_path)
    again = theory.load_or_run_monte_carlo(tiny, cache=tmp_path)  # read back from the cache
    assert (direct.dgamma_p_dl.abs() < 1e-10).any()  # k = 1e6: below the DataFrame encoding's precision
    for table in (first, again):
        assert np.array_equal(table.dgamma_p_dl.to_numpy(), direct.dgamma_p_dl.to_numpy())
        assert list(table.columns) == list(direct.columns)


def test_monte_carlo_config_validation():
    with pytest.raises(config.UserError, match="depths"):
        theory.MonteCarloConfig(depths=(30,), response_length=20)
    with pytest.raises(config.UserError, match="normalization"):
        theory.MonteCarloConfig(normalization="bits")
    with pytest.raises(config.UserError, match="pareto_scale"):
        theory.MonteCarloConfig(pareto_scale="1")


def test_pareto_scale_cancels():
    a = theory.pareto_masses(np.random.default_rng(3), 50, 1.5, 1.0)
    b = theory.pareto_masses(np.random.default_rng(3), 50, 1.5, 7.0)
    assert np.allclose(a, b) and a.sum() == pytest.approx(1.0)


def test_huffman_code_lengths():
    lengths = theory.huffman_code_lengths_bits([0.4, 0.2, 0.2, 0.1, 0.1])
    assert float(np.dot(lengths, [0.4, 0.2, 0.2, 0.1, 0.1])) == pytest.approx(2.2)
    for _ in range(20):
        probs = RNG.dirichlet(np.ones(int(RNG.integers(2, 40))))
        lengths = theory.huffman_code_lengths_bits(probs)
        assert np.sum(2.0 ** -lengths) == pytest.approx(1.0)  # a full binary tree: Kraft equality
        entropy = theory.entropy_bits(probs)
        assert entropy - 1e-12 <= float(np.dot(lengths, probs)) < entropy + 1


def test_token_tree_weights_loss_and_pruning():
    rng = np.random.default_rng(0)
    responses = theory.random_responses(rng, 40, 1, 6)
    masses = theory.pareto_masses(rng, 40, 1.5)
    weights, eos = theory.node_weights(responses, masses)
    assert weights[""] == pytest.approx(1.0)
    for prefix, weight in weights.items():  # a node weighs its EOS leaf plus its two children
        children = sum(weights.get(prefix + t, 0.0) for t in "01")
        assert weight == pytest.approx(eos.get(prefix, 0.0) + children)
    for response, mass in zip(responses, masses, strict=True):
        assert theory.sequence_nll_bits(response, weights, eos) == pytest.approx(-math.log2(mass))
    leaves = theory.prune(responses, masses, 3)
    assert sum(leaves.values()) == pytest.approx(1.0)
    assert all(len(label.rstrip("$.")) <= 3 for label in leaves)


def test_displayed_formula_is_the_entropy_of_the_pruned_leaves():
    rng = np.random.default_rng(1)
    responses = theory.random_responses(rng, 30, 0, 7)  # the empty response too: the root's EOS leaf
    masses = theory.pareto_masses(rng, 30, 1.2)
    weights, eos = theory.node_weights(responses, masses)
    for depth in range(1, 9):
        exact = theory.entropy_bits(list(theory.prune(responses, masses, depth).values()))
        assert theory.pruned_entropy_bits(weights, eos, depth) == pytest.approx(exact, abs=1e-12)
    # the displayed sums: EOS leaves over depths 1..d+1 (root at depth 1), cut nodes 1..2^d
    limits = {s.limits[-1] for s in theory.ideal_code_length_formula().rhs.atoms(sp.Sum)}
    assert any(upper == d + 1 for _, _, upper in limits)
    assert any(upper == 2**d for _, _, upper in limits)


def test_entropy_of_a_certain_outcome_is_plus_zero():
    assert math.copysign(1.0, theory.entropy_bits([1.0])) == 1.0


def test_spring_slope():
    assert theory.spring_slope(100.0, -0.01, 1.0) == pytest.approx(-1.0)
    assert theory.spring_slope(100.0, -1.0, 1.0) == pytest.approx(0.0)
    for k_ in (10.0, 1e3, 1e6):  # the closed form at small l: -1 to within the tolerance
        slope = theory.spring_slope(k_, *theory.rate_changes(k_, 0.01))
        assert abs(slope + 1) <= theory.SPRING_SLOPE_TOLERANCE
    # a large perturbation breaks the proportionality (d gamma_p/dl changes sign at l = 1/2)
    assert abs(theory.spring_slope(10.0, *theory.rate_changes(10.0, 0.45)) + 1) > theory.SPRING_SLOPE_TOLERANCE
    with pytest.raises(config.UserError):
        theory.spring_slope(1.0, -1.0, 1.0)


def test_path_probability_telescopes_and_ideal_code_length():
    w = sp.symbols("w_1:6", positive=True)
    assert sp.simplify(theory.path_probability(w).doit() - w[-1] / w[0]) == 0
    x = sp.Symbol("x", positive=True, integer=True)
    quarter = [sp.Rational(1, 4)] * 4
    assert theory.ideal_code_length_bits(x, 2, quarter).subs(x, 7) == 4 * 2
    with pytest.raises(config.UserError):
        theory.mixture_leaf_weight([1], [1, 2])


def test_no_torch_import():
    assert "torch" not in theory.__dict__
    source = open(theory.__file__).read()
    assert "import torch" not in source and "from torch" not in source
    # importing the module alone must not pull torch in
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", "import elasticity.theory, sys; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False"


@pytest.mark.notebooks
@pytest.mark.parametrize("stem", ["theory_token_tree", "theory_elasticity"])
def test_theory_chapter_executes_at_smoke_scale(stem, tmp_path, monkeypatch):
    import jupytext
    import papermill

    from elasticity import paths

    source = tmp_path / f"{stem}.ipynb"
    jupytext.write(jupytext.read(paths.notebooks_dir() / f"{stem}.md"), source)
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")  # the kernel inherits the environment
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path / "cache"))
    papermill.execute_notebook(str(source), str(tmp_path / "out.ipynb"), cwd=str(paths.notebooks_dir()),
                               progress_bar=False)
