"""Tests of elasticity.tokentree: tree weights, pruning, Huffman optimality and the compression protocol."""

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from elasticity import tokentree
from elasticity.config import UserError


def brute_force_optimal_length(probs: list[float]) -> float:
    """Least expected length over all length vectors that satisfy Kraft (all prefix codes, by McMillan)."""
    n = len(probs)
    best = math.inf
    for lengths in itertools.product(range(1, n), repeat=n):
        if sum(2.0 ** -length for length in lengths) <= 1 + 1e-12:
            best = min(best, sum(p * length for p, length in zip(probs, lengths, strict=True)))
    return best


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 100), min_size=2, max_size=6))
def test_huffman_is_optimal_against_brute_force(weights):
    probs = [w / sum(weights) for w in weights]
    masses = dict(enumerate(probs))
    lengths = tokentree.huffman_code_lengths(masses)
    assert tokentree.expected_length_bits(masses, lengths) == pytest.approx(brute_force_optimal_length(probs))
    assert tokentree.kraft_sum(lengths.values()) == pytest.approx(1.0)  # Huffman codes are complete


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(1e-9, 1.0), min_size=1, max_size=200))
def test_huffman_lies_within_one_bit_of_entropy_and_is_prefix_free(weights):
    total = sum(weights)
    masses = {i: w / total for i, w in enumerate(weights)}
    lengths = tokentree.huffman_code_lengths(masses)
    length = tokentree.expected_length_bits(masses, lengths)
    entropy = tokentree.entropy_bits(masses)
    if len(masses) > 1:
        assert entropy - 1e-9 <= length < entropy + 1 + 1e-9
    assert tokentree.kraft_sum(lengths.values()) <= 1 + 1e-12
    code = tokentree.canonical_code(lengths)
    words = sorted(code.values())
    assert all(not b.startswith(a) for a, b in itertools.pairwise(words))  # sorted: a prefix sits just before
    assert {len(code[s]) for s in code} == set(lengths.values())


def test_kraft_violations_are_refused():
    with pytest.raises(UserError, match="Kraft"):
        tokentree.canonical_code({"a": 1, "b": 1, "c": 1})


def test_tree_weights_and_pruning():
    seqs = [(0, 1), (0, 1), (0,), (1, 1, 0), ()]
    tree = tokentree.TokenTree.from_sequences(seqs)
    assert tree.node_weight(()) == 1.0
    assert tree.node_weight((0,)) == pytest.approx(3 / 5)
    assert tree.node_weight((0, 1)) == pytest.approx(2 / 5)
    leaves = tree.leaf_masses(1)
    # depth 1: (0,) folded (two continue), (0,) ended, (1,) folded, () ended
    assert leaves == pytest.approx({((0,), False): 2 / 5, ((0,), True): 1 / 5, ((1,), False): 1 / 5,
                                    ((), True): 1 / 5})
    assert sum(tree.leaf_masses(2).values()) == pytest.approx(1.0)
    deep = tree.leaf_masses(10)  # no pruning: one EOS leaf per distinct sequence
    assert len(deep) == 4 and all(ended for _, ended in deep)
    with pytest.raises(UserError):
        tree.leaf_masses(0)


def test_binary_sequences_are_utf8_bits():
    assert tokentree.binary_sequences(["A"]) == [(0, 1, 0, 0, 0, 0, 0, 1)]
    assert len(tokentree.binary_sequences(["é"])[0]) == 16


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 3), max_size=12), min_size=1, max_size=30), st.integers(1, 6))
def test_protocol_round_trips_and_respects_the_bounds(seqs, depth):
    row = tokentree.protocol_row(seqs, depth)  # raises if the real code does not decode its data
    assert row["entropy_bound_bits"] - 1e-9 <= row["measured_bits"]
    if row["num_block_types"] > 1:
        assert row["measured_bits"] < row["huffman_bound_bits"] + 1e-9
    protocol = tokentree.HuffmanProtocol.fit(seqs, depth)
    bits = "".join(protocol.encode(s) for s in seqs)
    assert protocol.decode(bits) == [tuple(s) for s in seqs]


def test_protocol_on_text_and_the_paper_formula():
    texts = ["the cat sat", "the cat ran", "a dog sat", "the cat sat"]
    seqs = tokentree.binary_sequences(texts)
    row = tokentree.protocol_row(seqs, 8)
    assert row["num_leaves"] == len(tokentree.TokenTree.from_sequences(seqs).leaf_masses(8))
    # Theorem 3.4 as transcribed: ceil(|x|/d) * ceil(H_d), averaged over the texts
    h = row["pruned_entropy_bits"]
    assert row["paper_formula_bits"] == pytest.approx(
        sum(math.ceil(len(s) / 8) * math.ceil(h) for s in seqs) / len(seqs))
    assert row["bits_per_token"] == pytest.approx(row["measured_bits"] * len(seqs) / sum(map(len, seqs)))


def test_formula_gap_and_its_tolerance():
    assert tokentree.formula_gap(11.0, 10.0) == pytest.approx(0.1)
    assert tokentree.formula_gap(9.0, 10.0) == pytest.approx(0.1)
    assert 0 < tokentree.FORMULA_TOLERANCE < 1
    # a text of only ASCII bits at d = 1: every first block is the bit 0, H_1 = 0 and the formula says 0 bits
    row = tokentree.protocol_row(tokentree.binary_sequences(["ab", "cd"]), 1)
    assert row["pruned_entropy_bits"] == 0.0 and math.copysign(1.0, row["pruned_entropy_bits"]) == 1.0
    assert tokentree.formula_gap(row["paper_formula_bits"], row["measured_bits"]) == pytest.approx(1.0)


def test_decoding_a_cut_bit_string_is_refused():
    protocol = tokentree.HuffmanProtocol.fit([(0, 1, 1), (1,)], 2)
    bits = protocol.encode((0, 1, 1))
    with pytest.raises(UserError):
        protocol.decode(bits[:-1])


def test_code_table_bits_counts_every_block_type():
    protocol = tokentree.HuffmanProtocol.fit([(0, 1, 1), (1,), (0, 1)], 2)
    # block types: ((0,1),F), ((1,),T), ((0,1),T) -> 3 entries; length field 2 bits, flag 1, symbols 1 bit
    # each, codeword-length field ceil(log2(max len + 1)) bits
    word_bits = math.ceil(math.log2(max(len(w) for w in protocol.code.values()) + 1))
    assert tokentree.code_table_bits(protocol.code, 2, 2) == sum(2 + 1 + len(t) + word_bits
                                                                   for t, _ in protocol.code)


def test_protocol_table_on_real_text():
    cfg = tokentree.ProtocolConfig(num_texts=15, depths=(1, 8))
    table = tokentree.protocol_table(cfg)
    assert list(table.depth) == [1, 8]
    assert (table.measured_bits >= table.entropy_bound_bits - 1e-9).all()
    assert (table.bits_per_byte_with_table >= table.bits_per_byte).all()
    with pytest.raises(UserError, match="alphabet"):
        tokentree.ProtocolConfig(alphabet="words")
