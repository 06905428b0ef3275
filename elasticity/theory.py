"""Sympy expressions of the paper's theory (token tree, code length, Theorem 4.2) and numeric versions."""

import dataclasses
import functools
import heapq
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import sympy as sp

from elasticity import config, results

# Every rate below is in nats (natural log) unless its name says bits.
# Symbols. `k` = |D_p| / |D_a| and `l` = |D_t| / |D_a| (Theorem 4.2); `d` = pruning depth in tokens;
# `M` = number of leaves of the pruned tree; `f_i` = share of D_p that is part D_i; `H_i` = entropy of
# part i's pruned-leaf distribution (nats per pruned block).
k, l = sp.symbols("k l", positive=True)  # noqa: E741
d = sp.Symbol("d", positive=True, integer=True)
M = sp.Symbol("M", positive=True, integer=True)
alpha, x_m = sp.symbols("alpha x_m", positive=True)
f = sp.symbols("f_1:4", positive=True)
H = sp.symbols("H_1:4", positive=True)
EQUAL_PARTS = (sp.Rational(1, 3),) * 3
_K, _L = k, l  # the symbols, for functions whose float arguments are called k and l

# The normalized compression rate of the paper is known only through one secondary source (digest §2.6,
# [S1] PN): gamma^{D_i/D} = gamma^{D_i} - log M, M the number of leaves of the pruned tree. The book's
# definition (book/notation.md) is "log-leaves": gamma^{D_i} - log(M) / d, both terms per token, M counted
# on the joint data's tree pruned at d (as `compression.normalized_compression_rate`, in bits there);
# log(M)/d is the rate of a uniform code over the M leaves, so the normalized rate is negative where the
# model's code beats the uniform one. "log-leaves-per-block" is the transcription taken literally (a
# per-block log M from a per-token rate). Every choice is a constant in the dataset sizes, so no
# derivative, ratio or change of rate below depends on it.
NORMALIZATIONS = {
    "log-leaves": lambda rate, num_leaves, depth: rate - sp.log(num_leaves) / depth,
    "log-leaves-per-block": lambda rate, num_leaves, depth: rate - sp.log(num_leaves),
    "none": lambda rate, num_leaves, depth: rate,
}


# ---------------------------------------------------------------------------------------------------
# Token tree, protocol, ideal code length (digest §2.1-2.4)


def mixture_leaf_weight(leaf_probs: Sequence, sizes: Sequence) -> sp.Expr:
    """Size-weighted leaf weight of the joint data (digest §2.5): sum_i p_i |D_i| / sum_i |D_i|."""
    if len(leaf_probs) != len(sizes):
        raise config.UserError(f"got {len(leaf_probs)} leaf probabilities for {len(sizes)} dataset sizes")
    return sp.Add(*[p * n for p, n in zip(leaf_probs, sizes, strict=True)]) / sp.Add(*sizes)


def compression_rate(leaf_probs: Sequence, joint_leaf_probs: Sequence, depth=d) -> sp.Expr:
    """Compression rate of a dataset under the joint data, nats per token (digest §2.5, up to Theta).

    -(1/d) sum_j p^{D_i}_j log p^{D}_j: the cross-entropy of the dataset's pruned-leaf distribution
    against the joint one, divided by the d tokens of a pruned block.
    """
    terms = [-p * sp.log(q) for p, q in zip(leaf_probs, joint_leaf_probs, strict=True)]
    return sp.Add(*terms) / depth


def normalized_rate(rate: sp.Expr, normalization: str = "log-leaves", num_leaves=M, depth=d) -> sp.Expr:
    """The normalized compression rate gamma^{D_i/D}; `normalization` is a key of `NORMALIZATIONS`."""
    return NORMALIZATIONS[config.choice("normalization", normalization, NORMALIZATIONS)](rate, num_leaves, depth)


def ideal_code_length_bits(length, depth, leaf_probs: Sequence) -> sp.Expr:
    """Theorem 3.4 in our reading: ceil(|x|/d) * ceil(-sum_j p_j log2 p_j), bits.

    Args:
        length: |x|, tokens (symbol or number).
        depth: pruning depth d, tokens.
        leaf_probs: probabilities of all leaves of the pruned tree, EOS leaves and cut nodes (symbols or
            numbers).
    """
    entropy = -sp.Add(*[p * sp.log(p, 2) for p in leaf_probs])
    return sp.ceiling(length / depth) * sp.ceiling(entropy)


def ideal_code_length_formula() -> sp.Eq:
    """Theorem 3.4 in our reading [R] of the transcription ([S1] KO), sums kept unevaluated, bits.

    E[L(x)] = ceil(|x|/d) ceil(-sum_{l=1}^{d+1} sum_{j=1}^{2^(l-1)} p_lj log2 p_lj - sum_{j=1}^{2^d} c_j log2 c_j):
    the entropy of all leaves of the tree pruned at d tokens. p_lj is the EOS leaf of the j-th node at depth
    l (root at depth 1, so d token layers are depths 2..d+1), c_j the cut node j at depth d+1 (the mass
    of the responses that go on below it). The transcription sums l = 1..d over EOS leaves only.
    `pruned_entropy_bits` evaluates the inner entropy term by term.
    """
    p, c = sp.IndexedBase("p"), sp.IndexedBase("c")
    depth_index, node = sp.symbols("l j", positive=True, integer=True)
    length = sp.Symbol(r"\lvert x \rvert", positive=True, integer=True)
    log2 = sp.Function(r"\log_{2}")  # kept unevaluated, for display
    entropy = -sp.Sum(
        sp.Sum(p[depth_index, node] * log2(p[depth_index, node]), (node, 1, 2 ** (depth_index - 1))),
        (depth_index, 1, d + 1),
    ) - sp.Sum(c[node] * log2(c[node]), (node, 1, 2**d))
    expected = sp.Symbol(r"\mathbb{E}\left[\mathcal{L}_{p_\theta}(x)\right]")
    return sp.Eq(expected, sp.ceiling(length / d) * sp.ceiling(entropy), evaluate=False)


def pruned_entropy_bits(weights: dict[str, float], eos: dict[str, float], depth: int) -> float:
    """The entropy inside Theorem 3.4 as `ideal_code_length_formula` displays it, term by term, bits.

    Args:
        weights, eos: node and EOS-leaf weights of the token tree (`node_weights`); a prefix of n tokens
            is a node at depth n + 1.
        depth: pruning depth d, tokens.

    Returns:
        -sum p log2 p over the EOS leaves of the prefixes of 0..d tokens (depths 1..d+1) and the cut nodes
        of d tokens (node weight minus its EOS leaf); the entropy of the leaves of `prune` at `depth`.
    """
    eos_leaves = [eos.get(prefix, 0.0) for prefix in weights if len(prefix) <= depth]
    cut_nodes = [w - eos.get(prefix, 0.0) for prefix, w in weights.items() if len(prefix) == depth]
    return entropy_bits([m for m in eos_leaves + cut_nodes if m > 1e-15])  # 1e-15: float residue of w - eos


def path_probability(node_weights: Sequence) -> sp.Expr:
    """Product of the next-token probabilities w_{t+1}/w_t along a root-to-leaf path of node weights.

    A model that has learned the node weights of the token tree predicts each token with the ratio of
    the child's weight to its parent's; the product telescopes to (leaf weight) / (root weight).
    """
    # each ratio is kept unevaluated so that the product can be displayed; `.doit()` cancels it
    ratios = [sp.UnevaluatedExpr(c / p) for p, c in zip(node_weights[:-1], node_weights[1:], strict=True)]
    return sp.Mul(*ratios, evaluate=False)


def random_responses(rng: np.random.Generator, num_responses: int, min_length: int, max_length: int) -> list[str]:
    """`num_responses` distinct binary responses with lengths uniform in [min_length, max_length] tokens."""
    if not 0 <= min_length <= max_length:
        raise config.UserError(f"need 0 <= min_length <= max_length; got {min_length}, {max_length}")
    capacity = sum(2**n for n in range(min_length, max_length + 1))
    if num_responses > capacity:
        raise config.UserError(f"num_responses = {num_responses} exceeds the {capacity} distinct responses")
    found: dict[str, None] = {}
    while len(found) < num_responses:
        n = int(rng.integers(min_length, max_length + 1))
        found.setdefault("".join(map(str, rng.integers(0, 2, size=n))), None)
    return list(found)


def pareto_masses(rng: np.random.Generator, num: int, shape: float, scale: float = 1.0) -> np.ndarray:
    """`num` i.i.d. Pareto(shape, scale) draws (density a s^a / x^(a+1) on x >= s), normalized to sum 1.

    The scale is a common factor of every draw, so it cancels in the normalization.
    """
    if shape <= 0 or scale <= 0:
        raise config.UserError(f"Pareto shape and scale must be > 0; got {shape}, {scale}")
    draws = scale * (1.0 + rng.pareto(shape, size=num))
    return draws / draws.sum()


def node_weights(responses: Sequence[str], masses: Sequence[float]) -> tuple[dict[str, float], dict[str, float]]:
    """Node weights and EOS-leaf weights of the token tree of `responses` (Definition 3.1).

    Returns:
        (weights, eos): weights[prefix] = total mass of the responses that start with `prefix` (the
        root is ""), eos[prefix] = mass of the response equal to `prefix` (its EOS leaf).
    """
    weights: dict[str, float] = {}
    eos: dict[str, float] = {}
    for response, mass in zip(responses, masses, strict=True):
        eos[response] = eos.get(response, 0.0) + float(mass)
        for n in range(len(response) + 1):
            weights[response[:n]] = weights.get(response[:n], 0.0) + float(mass)
    return weights, eos


def prune(responses: Sequence[str], masses: Sequence[float], depth: int) -> dict[str, float]:
    """Leaves of the token tree pruned to its top `depth` token layers, with their masses.

    Convention (a reading of Definition 3.3, tagged [R], the same as `elasticity.tokentree`): a
    response of at most `depth` tokens keeps its own EOS leaf (label = the response + "$"); a longer
    response is cut after `depth` tokens and its first block lands on the cut node (label = the prefix
    + "..."), which carries the mass of the whole subtree below it. Later blocks are coded with the
    same pruned tree (Theorem 3.4).
    """
    leaves: dict[str, float] = {}
    for response, mass in zip(responses, masses, strict=True):
        label = response + "$" if len(response) <= depth else response[:depth] + "..."
        leaves[label] = leaves.get(label, 0.0) + float(mass)
    return leaves


def huffman_code_lengths_bits(probs: Sequence[float]) -> np.ndarray:
    """Code length in bits of each symbol under a binary Huffman code for `probs` (shape [n])."""
    probs = np.asarray(probs, dtype=float)
    if probs.size == 1:
        return np.ones(1, dtype=int)  # one symbol still needs one bit per block to be decodable
    lengths = np.zeros(probs.size, dtype=int)
    # heap entries: (probability, tie-break counter, member symbols); merging adds one bit to each member
    heap = [(p, i, [i]) for i, p in enumerate(probs)]
    heapq.heapify(heap)
    counter = probs.size
    while len(heap) > 1:
        p_a, _, a = heapq.heappop(heap)
        p_b, _, b = heapq.heappop(heap)
        lengths[a + b] += 1
        heapq.heappush(heap, (p_a + p_b, counter, a + b))
        counter += 1
    return lengths


def entropy_bits(probs: Sequence[float]) -> float:
    """Shannon entropy -sum p log2 p of a distribution, bits (zero masses contribute nothing)."""
    probs = np.asarray(probs, dtype=float)
    probs = probs[probs > 0]
    return float(-(probs * np.log2(probs)).sum()) + 0.0  # + 0.0: no -0.0 for a one-symbol distribution


def sequence_nll_bits(response: str, weights: dict[str, float], eos: dict[str, float]) -> float:
    """Training loss -sum_t log2 p(token_t | prefix) of `response` (with its EOS) under the tree's weights."""
    bits = 0.0
    for n in range(len(response)):
        bits -= math.log2(weights[response[: n + 1]] / weights[response[:n]])
    return bits - math.log2(eos[response] / weights[response])


# ---------------------------------------------------------------------------------------------------
# Theorem 4.2 in the disjoint-support reconstruction (digest §2.8, §2.10)


@dataclasses.dataclass(frozen=True)
class Elasticity:
    """The symbolic objects of Theorem 4.2 (digest §2.10 reconstruction), rates in nats per token.

    Pre-training data D_p = D_1 u D_2 u D_3 of size k (unit |D_a|), parts in shares `fractions`;
    alignment data D_a (size 1) distributed like D_2; perturbation D_t (size l) like D_3; the parts
    have disjoint pruned-leaf supports, so each cross-entropy splits into H_i - log w_i.
    """

    fractions: tuple[sp.Expr, sp.Expr, sp.Expr]
    weights: tuple[sp.Expr, sp.Expr, sp.Expr]  # w_i: joint mass of part i's leaves
    gamma_a: sp.Expr
    gamma_p: sp.Expr
    dgamma_a_dl: sp.Expr
    dgamma_p_dl: sp.Expr
    ratio: sp.Expr  # (dgamma_a/dl) / (dgamma_p/dl)
    ratio_limit: sp.Expr  # lim_{l -> 0} ratio
    sign_change_l: sp.Expr  # the l at which dgamma_p/dl changes sign
    force_balance: sp.Expr  # |D_p| dgamma_p/dl + |D_a| dgamma_a/dl (unit |D_a|)
    delta_gamma_a: sp.Expr  # gamma_a(l) - gamma_a(0)
    delta_gamma_p: sp.Expr  # gamma_p(l) - gamma_p(0)


@functools.cache
def elasticity(equal_parts: bool = True) -> Elasticity:
    """Derive Theorem 4.2's derivatives, ratio, limit and sign change with sympy.

    Args:
        equal_parts: True for the theorem's equal parts f_i = 1/3; False keeps f_1, f_2, f_3 symbolic
            (with f_1 + f_2 + f_3 = 1 substituted as f_1 = 1 - f_2 - f_3).
    """
    fr = EQUAL_PARTS if equal_parts else (1 - f[1] - f[2], f[1], f[2])
    total = k + 1 + l
    weights = (k * fr[0] / total, (k * fr[1] + 1) / total, (k * fr[2] + l) / total)
    # Disjoint supports: -sum_{j in part i} p_ij log(w_i p_ij) = H_i - log w_i (per block); / d per token.
    part_rate = [(H[i] - sp.log(weights[i])) / d for i in range(3)]
    gamma_a = part_rate[1]
    gamma_p = sp.Add(*[fr[i] * part_rate[i] for i in range(3)])
    dgamma_a = sp.factor(sp.simplify(sp.diff(gamma_a, l)))
    dgamma_p = sp.factor(sp.simplify(sp.diff(gamma_p, l)))
    ratio = sp.factor(sp.simplify(dgamma_a / dgamma_p))
    # gamma_i(l) - gamma_i(0) = log(w_i(0) / w_i(l)) / d for each part
    shift = [sp.log(sp.factor(w.subs(l, 0) / w)) / d for w in weights]
    numerator_p = sp.numer(sp.together(dgamma_p))
    roots = sp.solve(sp.Eq(numerator_p, 0), l)
    return Elasticity(
        fractions=fr,
        weights=weights,
        gamma_a=gamma_a,
        gamma_p=gamma_p,
        dgamma_a_dl=dgamma_a,
        dgamma_p_dl=dgamma_p,
        ratio=ratio,
        ratio_limit=sp.limit(ratio, l, 0),
        sign_change_l=roots[0] if len(roots) == 1 else sp.Tuple(*roots),
        force_balance=sp.factor(sp.simplify(k * dgamma_p + dgamma_a)),
        delta_gamma_a=shift[1],
        delta_gamma_p=sp.Add(*[fr[i] * shift[i] for i in range(3)]),
    )


@functools.cache
def _numeric(name: str):
    return sp.lambdify((k, l, d), getattr(elasticity(True), name), "numpy")


def elasticity_derivatives(k: float, l: float, depth: float = 1) -> tuple[float, float]:  # noqa: E741
    """(d gamma_p / dl, d gamma_a / dl) of Theorem 4.2's equal-parts setting, from the sympy closed forms.

    Args:
        k: |D_p| / |D_a| > 0.
        l: |D_t| / |D_a| >= 0.
        depth: pruning depth d, tokens; the default 1 gives nats per pruned block (the digest's closed
            forms (2l-1)/((k+3l)(k+l+1)) and 1/(k+l+1)); the per-token rates are these divided by d.

    Returns:
        (dgamma_p_dl, dgamma_a_dl), nats per unit of l.
    """
    if not (k > 0 and l >= 0 and depth > 0):
        raise config.UserError(f"need k > 0, l >= 0, depth > 0; got k={k!r}, l={l!r}, depth={depth!r}")
    return float(_numeric("dgamma_p_dl")(k, l, depth)), float(_numeric("dgamma_a_dl")(k, l, depth))


def elasticity_ratio(k: float, l: float) -> float:  # noqa: E741
    """(d gamma_a/dl) / (d gamma_p/dl) in the equal-parts setting: -(k + 3l)/(1 - 2l)."""
    dgamma_p, dgamma_a = elasticity_derivatives(k, l)
    return dgamma_a / dgamma_p


def rate_changes(k: float, l: float, depth: float = 1) -> tuple[float, float]:  # noqa: E741
    """(gamma_p(l) - gamma_p(0), gamma_a(l) - gamma_a(0)) of the equal-parts setting, nats per token.

    Evaluated from the sympy closed forms at exact rational arguments with 30 significant digits: for
    k = 1e6 the change of gamma_p is a difference of logs about 1e6 times larger than itself, which
    float64 would lose. `depth` = 1 gives nats per pruned block.
    """
    if not (k > 0 and l >= 0 and depth > 0):
        raise config.UserError(f"need k > 0, l >= 0, depth > 0; got k={k!r}, l={l!r}, depth={depth!r}")
    exact = elasticity(True)
    values = {_K: sp.Rational(k), _L: sp.Rational(l), d: sp.Rational(depth)}
    return float(exact.delta_gamma_p.subs(values).evalf(30)), float(exact.delta_gamma_a.subs(values).evalf(30))


# Figure 1's inverse proportionality (|D_i| x change of rate the same for every dataset) counts as shown
# where the log-log slope of |change of rate| against dataset size is within this of -1 (our tolerance).
SPRING_SLOPE_TOLERANCE = 0.05


def spring_slope(k: float, delta_gamma_p: float, delta_gamma_a: float) -> float:
    """Log-log slope of |change of rate| against dataset size, from D_a (size 1) to D_p (size k).

    log(|delta_gamma_p| / |delta_gamma_a|) / log(k); -1 is an exact inverse proportionality.
    """
    if not k > 1:
        raise config.UserError(f"need k > 1 for a slope between sizes 1 and k; got k={k!r}")
    return math.log(abs(delta_gamma_p) / abs(delta_gamma_a)) / math.log(k)


@dataclasses.dataclass(frozen=True)
class ForceBalance:
    """The leaf-level identity behind the Hooke's-law analogy, derived for a small tree with sympy."""

    derivative: sp.Expr  # d gamma_i/dl of dataset 1, as sympy computes it
    derivative_claim: sp.Expr  # (1/N)(1 - sum_j p_1j q_j / m_j)
    total_force: sp.Expr  # sum_i |D_i| d gamma_i / dl over the datasets other than the perturbation
    total_force_claim: sp.Expr  # (l/N)(sum_j q_j^2 / m_j - 1)
    derivative_residual: sp.Expr  # simplified difference: 0 when the claim holds
    total_force_residual: sp.Expr  # simplified difference: 0 when the claim holds
    total_force_at_0: sp.Expr  # total force at l = 0: 0


@functools.cache
def force_balance(num_datasets: int = 2, num_leaves: int = 3) -> ForceBalance:
    """Check sum_i |D_i| d gamma_i/dl = (l/N)(sum_j q_j^2/m_j - 1) for arbitrary, overlapping leaf masses.

    Datasets D_1..D_K with sizes n_i and leaf distributions p_i (rows sum to one) are trained jointly
    with a perturbation of size l and leaf distribution q; m = (sum_i n_i p_i + l q)/N, N = sum n_i + l.
    Rates are per block (d = 1) and nats.
    """
    n = sp.symbols(f"n_1:{num_datasets + 1}", positive=True)
    p = [[sp.Symbol(f"p_{i + 1}{j + 1}", positive=True) for j in range(num_leaves)] for i in range(num_datasets)]
    q = [sp.Symbol(f"q_{j + 1}", positive=True) for j in range(num_leaves)]
    total = sp.Add(*n) + l
    m = [(sp.Add(*[n[i] * p[i][j] for i in range(num_datasets)]) + l * q[j]) / total for j in range(num_leaves)]
    gammas = [compression_rate(p[i], m, 1) for i in range(num_datasets)]
    on_simplex = {p[i][-1]: 1 - sp.Add(*p[i][:-1]) for i in range(num_datasets)} | {q[-1]: 1 - sp.Add(*q[:-1])}
    derivative = sp.diff(gammas[0], l)
    derivative_claim = (1 - sp.Add(*[p[0][j] * q[j] / m[j] for j in range(num_leaves)])) / total
    force = sp.Add(*[n[i] * sp.diff(gammas[i], l) for i in range(num_datasets)])
    force_claim = l / total * (sp.Add(*[q[j] ** 2 / m[j] for j in range(num_leaves)]) - 1)
    return ForceBalance(
        derivative=derivative,
        derivative_claim=derivative_claim,
        total_force=force,
        total_force_claim=force_claim,
        derivative_residual=sp.simplify((derivative - derivative_claim).subs(on_simplex)),
        total_force_residual=sp.simplify((force - force_claim).subs(on_simplex)),
        total_force_at_0=sp.simplify(force.subs(on_simplex).subs(l, 0)),
    )


# ---------------------------------------------------------------------------------------------------
# Monte Carlo on random Pareto token trees (the Pareto assumption A.7, digest §2.6)


@dataclasses.dataclass(frozen=True)
class MonteCarloConfig:
    """Random token trees with Pareto leaf masses, pruned at several depths, in Theorem 4.2's setting.

    Each tree: 3 * `num_responses` distinct binary responses of `response_length` tokens (so the three
    parts D_1, D_2, D_3 are disjoint at full depth), `num_responses` per part, masses i.i.d.
    Pareto(`pareto_shape`, `pareto_scale`) normalized within each part. Pruning at depth d merges
    responses that share their first d tokens, which is where the parts' supports start to overlap.
    """

    ks: tuple[float, ...] = (10.0, 1e3, 1e6)  # |D_p| / |D_a|
    ls: tuple[float, ...] = (1e-3, 1e-2, 0.1, 0.3, 0.45)  # |D_t| / |D_a|
    depths: tuple[int, ...] = (6, 8, 10, 12, 14, 16, 20)  # pruning depths d, tokens
    pareto_shapes: tuple[float, ...] = (1.1, 1.5, 3.0)  # alpha
    pareto_scale: float = 1.0  # x_m (cancels in the normalization)
    response_length: int = 20  # tokens per response (>= every depth)
    num_responses: int = 2000  # responses per part
    num_trees: int = 16  # Monte Carlo repetitions per shape
    normalization: str = "log-leaves"  # a key of NORMALIZATIONS
    seed: int = 0

    def __post_init__(self) -> None:
        config.check_types(self)
        config.choice("normalization", self.normalization, NORMALIZATIONS)
        if not self.ks or min(self.ks) <= 0:
            raise config.UserError(f"MonteCarloConfig.ks = {self.ks!r}: need at least one k, all > 0")
        if not self.ls or min(self.ls) <= 0:
            raise config.UserError(f"MonteCarloConfig.ls = {self.ls!r}: need at least one l, all > 0")
        if not self.depths or min(self.depths) < 1 or max(self.depths) > self.response_length:
            raise config.UserError(
                f"MonteCarloConfig.depths = {self.depths!r}: need 1 <= depth <= response_length "
                f"({self.response_length})"
            )
        if self.response_length > 62:
            raise config.UserError(f"MonteCarloConfig.response_length = {self.response_length}: at most 62")
        if 3 * self.num_responses > 2**self.response_length:
            raise config.UserError(
                f"MonteCarloConfig.num_responses = {self.num_responses}: 3 parts need at most "
                f"2**response_length / 3 = {2**self.response_length // 3}"
            )
        if not self.pareto_shapes or min(self.pareto_shapes) <= 0 or self.pareto_scale <= 0:
            raise config.UserError("MonteCarloConfig: Pareto shapes and scale must be > 0")
        if self.num_trees < 1 or self.num_responses < 1:
            raise config.UserError("MonteCarloConfig: num_trees and num_responses must be >= 1")


PRESETS = {
    "default": MonteCarloConfig(),
    "smoke": MonteCarloConfig(
        ls=(1e-3, 0.3),
        depths=(8, 12, 16),
        pareto_shapes=(1.5,),
        response_length=16,
        num_responses=300,
        num_trees=3,
    ),
}


def pruned_parts(
    rng: np.random.Generator,
    num_responses: int,
    response_length: int,
    depths: Sequence[int],
    shape: float,
    scale: float,
) -> dict[int, np.ndarray]:
    """Leaf distributions of three disjoint Pareto parts at each pruning depth.

    Returns:
        {depth: array [3, num_occupied_leaves]} whose row i is part i's pruned-leaf distribution
        (only the leaves that some part occupies are kept; empty leaves carry no mass in any part).
    """
    codes = rng.choice(2**response_length, size=3 * num_responses, replace=False)
    masses = np.concatenate([pareto_masses(rng, num_responses, shape, scale) for _ in range(3)])
    part = np.repeat(np.arange(3), num_responses)
    out = {}
    for depth in depths:
        prefix = codes >> (response_length - depth)  # the first `depth` tokens of each response
        leaves, index = np.unique(prefix, return_inverse=True)
        dist = np.zeros((3, leaves.size))
        np.add.at(dist, (part, index), masses)
        out[depth] = dist
    return out


def leaf_rates(parts: np.ndarray, k: float, l: float, depth: int, normalization: str = "log-leaves") -> dict:  # noqa: E741
    """Normalized rates of D_p and D_a and their l-derivatives from pruned-leaf distributions.

    Args:
        parts: array [3, leaves], rows = the pruned-leaf distributions of D_1, D_2, D_3; every leaf
            carries mass in some part (as `pruned_parts` returns them).
        k, l: |D_p|/|D_a| and |D_t|/|D_a|; D_p has equal parts, D_a ~ D_2, D_t ~ D_3.
        depth: pruning depth d, tokens (rates are nats per token).
        normalization: a key of NORMALIZATIONS, with M = the number of leaves (columns of `parts`).

    Returns:
        dict with gamma_p, gamma_a (nats/token), dgamma_p_dl, dgamma_a_dl, delta_gamma_p, delta_gamma_a
        (change from l = 0 to l), and overlap_a_t = sum_j p_a(j) q(j) / m(j) at l = 0.
    """
    p_p = parts.mean(axis=0)
    p_a, q = parts[1], parts[2]
    total0, total = k + 1, k + 1 + l
    m0 = (k * p_p + p_a) / total0
    m = (k * p_p + p_a + l * q) / total
    # d gamma_i/dl = (1/(d N)) (1 - sum_j p_ij q_j / m_j), the identity checked by `force_balance`
    dgamma = {name: (1 - np.sum(p * q / m)) / (depth * total) for name, p in (("p", p_p), ("a", p_a))}
    # gamma(l) - gamma(0) = -(1/d) sum_j p_j log(m_j(l)/m_j(0)), with m(l) - m(0) = l (q - m0)/N taken
    # exactly so that the tiny change for large k is not lost to cancellation
    log_ratio = np.log1p(l * (q - m0) / (total * m0))
    delta = {name: -np.sum(p * log_ratio) / depth for name, p in (("p", p_p), ("a", p_a))}
    num_leaves = parts.shape[1]  # M: the joint data's pruned tree, since D_a and D_t sit where D_2 and D_3 do
    constant = float(normalized_rate(sp.Integer(0), normalization, num_leaves, depth))
    gamma = {name: -np.sum(p[p > 0] * np.log(m[p > 0])) / depth + constant for name, p in (("p", p_p), ("a", p_a))}
    return {
        "gamma_p": gamma["p"],
        "gamma_a": gamma["a"],
        "dgamma_p_dl": dgamma["p"],
        "dgamma_a_dl": dgamma["a"],
        "delta_gamma_p": delta["p"],
        "delta_gamma_a": delta["a"],
        "overlap_a_t": float(np.sum(p_a * q / m0)),
    }


def run_monte_carlo(cfg: MonteCarloConfig) -> pd.DataFrame:
    """One row per (shape, tree, depth, k, l): measured derivatives, ratio and the closed forms beside them.

    Columns: pareto_shape, tree, depth, k, l, the keys of `leaf_rates`, ratio (measured
    dgamma_a/dgamma_p), ratio_closed_form (-(k+3l)/(1-2l)), dgamma_p_dl_closed_form,
    dgamma_a_dl_closed_form (nats/token), shared_leaves (fraction of D_2's leaves also in D_3).
    Seeded by `cfg.seed`: the same config gives the same numbers.
    """
    rows = []
    for s, shape in enumerate(cfg.pareto_shapes):
        rng = np.random.default_rng([cfg.seed, s])
        for tree in range(cfg.num_trees):
            dists = pruned_parts(rng, cfg.num_responses, cfg.response_length, cfg.depths, shape, cfg.pareto_scale)
            for depth, parts in dists.items():
                shared = float(np.mean(parts[2][parts[1] > 0] > 0))
                for k_ in cfg.ks:
                    for l_ in cfg.ls:
                        rates = leaf_rates(parts, k_, l_, depth, cfg.normalization)
                        closed_p, closed_a = elasticity_derivatives(k_, l_, depth)
                        rows.append(
                            {
                                "pareto_shape": shape,
                                "tree": tree,
                                "depth": depth,
                                "k": k_,
                                "l": l_,
                                **rates,
                                "ratio": rates["dgamma_a_dl"] / rates["dgamma_p_dl"],
                                "ratio_closed_form": elasticity_ratio(k_, l_),
                                "dgamma_p_dl_closed_form": closed_p,
                                "dgamma_a_dl_closed_form": closed_a,
                                "shared_leaves": shared,
                            }
                        )
    return pd.DataFrame(rows)


def _monte_carlo_columns(cfg: MonteCarloConfig) -> dict[str, list]:
    return run_monte_carlo(cfg).to_dict("list")


def load_or_run_monte_carlo(cfg: MonteCarloConfig, *, cache=None) -> pd.DataFrame:
    """`run_monte_carlo(cfg)` through the results cache (`results.load_or_run`), as a DataFrame.

    The table is stored as plain columns of floats, not as a DataFrame: `results` encodes DataFrames
    with 10 decimal places, which would turn the derivatives for k = 1e6 (about 1e-13) into 0.
    """
    return pd.DataFrame(results.load_or_run("theory_elasticity_monte_carlo", cfg, _monte_carlo_columns, cache=cache))
