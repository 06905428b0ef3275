"""Token trees of token-sequence datasets: pruning, leaf masses, the paper's Huffman compression protocol."""

from __future__ import annotations

import heapq
import itertools
import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from elasticity.config import UserError

# A leaf of a tree pruned at depth d is a pair (prefix, ended):
#   prefix: the first min(|x|, d) tokens of a sequence x (a tuple);
#   ended:  True if x ends within those tokens (|x| <= d), i.e. the leaf is x's end-of-sequence leaf;
#           False if x goes on below depth d and the pruned subtree was folded into this node.
# The paper's binary token tree (Definition 3.1) is the special case of the alphabet {0, 1}; every node
# there has an EOS leaf child, which is the `ended=True` leaf here.
Leaf = tuple[tuple[Hashable, ...], bool]


def binary_sequences(texts: Iterable[str]) -> list[tuple[int, ...]]:
    """The paper's binary alphabet: each text as the bits of its UTF-8 bytes, most significant bit first."""
    return [tuple((byte >> (7 - k)) & 1 for byte in text.encode("utf-8") for k in range(8)) for text in texts]


class TokenTree:
    """The token tree of a dataset: node weights are the fraction of sequences passing through each node.

    The tree is stored as the multiset of its root-to-leaf paths (the sequences), which determines every
    node and leaf weight; each sequence has weight 1/N (the empirical distribution of the dataset).
    """

    def __init__(self, counts: Mapping[tuple, int]):
        if not counts:
            raise UserError("a token tree needs at least one sequence")
        self.counts = dict(counts)
        self.num_sequences = sum(self.counts.values())

    @classmethod
    def from_sequences(cls, sequences: Iterable[Sequence[Hashable]]) -> TokenTree:
        """Build the tree of a dataset of token sequences (any hashable tokens)."""
        return cls(Counter(tuple(s) for s in sequences))

    def node_weight(self, prefix: Sequence[Hashable]) -> float:
        """Weight of the node reached by `prefix`: the fraction of sequences that start with it."""
        prefix = tuple(prefix)
        hits = sum(c for s, c in self.counts.items() if s[: len(prefix)] == prefix)
        return hits / self.num_sequences

    def leaf_masses(self, depth: int) -> dict[Leaf, float]:
        """Leaves of the tree pruned to its top `depth` layers, with their masses (summing to 1)."""
        if not isinstance(depth, int) or depth < 1:
            raise UserError(f"depth = {depth!r}; expected a positive integer")
        masses: Counter = Counter()
        for seq, count in self.counts.items():
            masses[(seq[:depth], len(seq) <= depth)] += count
        return {leaf: c / self.num_sequences for leaf, c in masses.items()}

    def max_depth(self) -> int:
        """Length of the longest sequence."""
        return max(len(s) for s in self.counts)


def entropy_bits(masses: Mapping[Hashable, float] | Sequence[float]) -> float:
    """Shannon entropy -sum p log2 p (bits) of a distribution given as masses (zeros ignored)."""
    values = masses.values() if isinstance(masses, Mapping) else masses
    # + 0.0 turns the -0.0 of a one-symbol distribution into 0.0 (a table would print "-0.00")
    return -sum(p * math.log2(p) for p in values if p > 0) + 0.0


def huffman_code_lengths(masses: Mapping[Hashable, float]) -> dict[Hashable, int]:
    """Codeword lengths (bits) of a Huffman code for symbols with the given masses.

    Ties are broken by insertion order, so the result is deterministic. A lone symbol gets 1 bit (a code
    must emit something per symbol for the block decoder to advance).
    """
    if not masses:
        raise UserError("a Huffman code needs at least one symbol")
    symbols = list(masses)
    if len(symbols) == 1:
        return {symbols[0]: 1}
    counter = itertools.count()
    heap = [(float(masses[s]), next(counter), [s]) for s in symbols]
    heapq.heapify(heap)
    lengths = dict.fromkeys(symbols, 0)
    while len(heap) > 1:
        m1, _, group1 = heapq.heappop(heap)
        m2, _, group2 = heapq.heappop(heap)
        for s in group1 + group2:  # every merge adds one bit to each symbol below it
            lengths[s] += 1
        heapq.heappush(heap, (m1 + m2, next(counter), group1 + group2))
    return lengths


def canonical_code(lengths: Mapping[Hashable, int]) -> dict[Hashable, str]:
    """A canonical prefix code (symbol -> codeword as a '0'/'1' string) with the given lengths.

    Raises:
        UserError: if the lengths violate the Kraft inequality (no prefix code has them).
    """
    if kraft_sum(lengths.values()) > 1 + 1e-12:
        raise UserError("code lengths violate the Kraft inequality; no prefix code has them")
    order = sorted(lengths, key=lambda s: (lengths[s], repr(s)))
    code, value, previous = {}, 0, None
    for s in order:
        if previous is not None:
            value = (value + 1) << (lengths[s] - previous)
        code[s] = format(value, f"0{lengths[s]}b") if lengths[s] else ""
        previous = lengths[s]
    return code


def kraft_sum(lengths: Iterable[int]) -> float:
    """sum 2^-l over codeword lengths; at most 1 for every prefix code, exactly 1 for a complete one."""
    return math.fsum(2.0 ** -length for length in lengths)


def expected_length_bits(masses: Mapping[Hashable, float], lengths: Mapping[Hashable, int]) -> float:
    """Expected codeword length sum p_s l_s (bits per symbol)."""
    return math.fsum(p * lengths[s] for s, p in masses.items())


# ---------------------------------------------------------------------------------------------------------
# The compression protocol (Definition 3.3) as a real, decodable code.
#
# A sequence x is cut into ceil(|x| / d) blocks of d tokens (the last one possibly shorter); an empty
# sequence is one empty block. Each block is a leaf (block, ended) of a depth-d tree, with ended=True for
# the last block, so the decoder knows where x stops. The Huffman code is built over the empirical
# distribution of the blocks of the whole dataset, and every block is written with its codeword.
#
# Bits per sequence = the sum of its blocks' codeword lengths. Averaged over the dataset this equals
# (blocks per sequence) x (Huffman expected length per block), and the Huffman length per block lies in
# [H_blocks, H_blocks + 1) bits, where H_blocks is the entropy of the block distribution.
#
# The paper's formula (Theorem 3.4, as transcribed) predicts ceil(|x| / d) * ceil(H_d) bits for x, with
# H_d the entropy of the leaves of the dataset's tree pruned at depth d (the first block only). The two
# agree when the blocks after the first are distributed like the first; the chapter measures the gap.
# The code lengths here are of the code itself: the code table (which the decoder needs) is not counted.
# ---------------------------------------------------------------------------------------------------------


def blocks(sequence: Sequence[Hashable], depth: int) -> list[Leaf]:
    """The protocol's blocks of a sequence: (tokens, is_last) pairs of at most `depth` tokens."""
    seq = tuple(sequence)
    if not seq:
        return [((), True)]
    starts = range(0, len(seq), depth)
    return [(seq[i : i + depth], i + depth >= len(seq)) for i in starts]


def block_masses(sequences: Iterable[Sequence[Hashable]], depth: int) -> dict[Leaf, float]:
    """Empirical distribution of the protocol's blocks over a dataset (masses sum to 1)."""
    counts = Counter(b for s in sequences for b in blocks(s, depth))
    total = sum(counts.values())
    return {b: c / total for b, c in counts.items()}


@dataclass(frozen=True)
class HuffmanProtocol:
    """The protocol's Huffman code at one depth: encode and decode whole datasets of sequences."""

    depth: int
    code: dict  # block leaf -> codeword ('0'/'1' string)

    @classmethod
    def fit(cls, sequences: Sequence[Sequence[Hashable]], depth: int) -> HuffmanProtocol:
        """Build the Huffman code of the dataset's block distribution at `depth`."""
        if not isinstance(depth, int) or depth < 1:
            raise UserError(f"depth = {depth!r}; expected a positive integer")
        return cls(depth, canonical_code(huffman_code_lengths(block_masses(sequences, depth))))

    def encode(self, sequence: Sequence[Hashable]) -> str:
        """The bits ('0'/'1' string) of one sequence; KeyError if it has a block the code never saw."""
        return "".join(self.code[b] for b in blocks(sequence, self.depth))

    def decode(self, bits: str) -> list[tuple]:
        """Decode a concatenation of encoded sequences back into the sequences."""
        inverse = {word: leaf for leaf, word in self.code.items()}
        out, current, word = [], [], ""
        for bit in bits:
            word += bit
            if word in inverse:
                tokens, last = inverse[word]
                current.extend(tokens)
                word = ""
                if last:
                    out.append(tuple(current))
                    current = []
        if word or current:
            raise UserError("the bit string ends inside a codeword or a sequence")
        return out


def paper_expected_length_bits(length: int, depth: int, pruned_entropy_bits: float) -> int:
    """Theorem 3.4 as transcribed: ceil(|x| / d) * ceil(H_d) bits for a sequence of `length` tokens."""
    return math.ceil(length / depth) * math.ceil(pruned_entropy_bits)


# Theorem 3.4's formula counts as reproduced where its gap to the measured length (`formula_gap`) is at
# most this fraction at every depth. The tolerance is ours (the paper states an equality, no tolerance);
# every chapter that gives a verdict on the formula uses this one.
FORMULA_TOLERANCE = 0.10


def formula_gap(formula_bits, measured_bits):
    """|formula - measured| / measured: the relative gap of Theorem 3.4's formula to the real code's length.

    Works on numbers and on columns (`paper_formula_bits`, `measured_bits` of `protocol_row` rows).
    """
    return abs(formula_bits - measured_bits) / measured_bits


def code_table_bits(code: Mapping[Leaf, str], alphabet_size: int, depth: int) -> int:
    """Bits to transmit the protocol's code table, which the decoder needs and the code lengths omit.

    A plain description, per block type: its length (ceil(log2(depth + 1)) bits), its ended flag (1 bit),
    its symbols (ceil(log2 alphabet_size) bits each) and its codeword length (ceil(log2(max length + 1))
    bits); a canonical Huffman code is rebuilt from the lengths alone.
    """
    length_bits = math.ceil(math.log2(depth + 1))
    symbol_bits = math.ceil(math.log2(max(alphabet_size, 2)))
    word_bits = math.ceil(math.log2(max(len(w) for w in code.values()) + 1))
    return sum(length_bits + 1 + symbol_bits * len(tokens) + word_bits for tokens, _ in code)


def protocol_row(sequences: Sequence[Sequence[Hashable]], depth: int) -> dict[str, float]:
    """Measure the protocol at one depth on a dataset; every quantity in bits per sequence unless named.

    Returns a dict with: depth; num_leaves (of the tree pruned at depth); pruned_entropy_bits (H_d, the
    leaf entropy of the pruned tree); num_block_types; block_entropy_bits; huffman_bits_per_block;
    measured_bits (mean length of the real encoding, checked to decode); entropy_bound_bits (mean blocks
    x block entropy, a lower bound); huffman_bound_bits (mean blocks x (block entropy + 1), an upper
    bound); paper_formula_bits (mean of Theorem 3.4 over the sequences); bits_per_token (measured).
    """
    seqs = [tuple(s) for s in sequences]
    tree = TokenTree.from_sequences(seqs)
    pruned = tree.leaf_masses(depth)
    pruned_entropy = entropy_bits(pruned)
    masses = block_masses(seqs, depth)
    lengths = huffman_code_lengths(masses)
    protocol = HuffmanProtocol(depth, canonical_code(lengths))
    encoded = [protocol.encode(s) for s in seqs]
    if protocol.decode("".join(encoded)) != seqs:  # a real code: it must give the data back
        raise AssertionError("the Huffman protocol failed to round-trip its own data")
    n = len(seqs)
    mean_blocks = sum(len(blocks(s, depth)) for s in seqs) / n
    block_entropy = entropy_bits(masses)
    num_tokens = sum(len(s) for s in seqs)
    measured = sum(len(e) for e in encoded) / n
    return {
        "depth": depth,
        "num_leaves": len(pruned),
        "pruned_entropy_bits": pruned_entropy,
        "num_block_types": len(masses),
        "block_entropy_bits": block_entropy,
        "huffman_bits_per_block": expected_length_bits(masses, lengths),
        "measured_bits": measured,
        "entropy_bound_bits": mean_blocks * block_entropy,
        "huffman_bound_bits": mean_blocks * (block_entropy + 1),
        "paper_formula_bits": sum(paper_expected_length_bits(len(s), depth, pruned_entropy)
                                  for s in seqs) / n,
        "bits_per_token": measured * n / num_tokens if num_tokens else float("nan"),
    }


# ---------------------------------------------------------------------------------------------------------
# The chapter `compression_protocol`: the protocol on real text, as the pruning depth grows.
# ---------------------------------------------------------------------------------------------------------

ALPHABETS = ("binary", "bytes")


@dataclass(frozen=True)
class ProtocolConfig:
    """Which texts, which alphabet, which depths.

    Attributes:
        dataset: a key of `elasticity.data.DATASETS` whose examples are the texts (prompt + response).
        split: "train" or "eval".
        num_texts: how many texts (the first of the dataset's seed-0 order).
        alphabet: "binary" (the paper's {0, 1}: the bits of the UTF-8 bytes) or "bytes" (256 symbols).
        depths: pruning depths, in symbols of the alphabet.
    """

    dataset: str = "rotten-tomatoes"
    split: str = "eval"
    num_texts: int = 400
    alphabet: str = "binary"
    depths: tuple[int, ...] = (1, 2, 4, 8, 12, 16, 24, 32)

    def __post_init__(self) -> None:
        from elasticity.config import check_types, choice

        check_types(self)
        choice("alphabet", self.alphabet, ALPHABETS)
        choice("split", self.split, ("train", "eval"))
        if self.num_texts < 1:
            raise UserError(f"num_texts = {self.num_texts}; expected at least 1")
        if not self.depths or min(self.depths) < 1:
            raise UserError(f"depths = {self.depths!r}; expected positive integers")


PRESETS = {
    "default": {"binary": ProtocolConfig(),
                "bytes": ProtocolConfig(alphabet="bytes", depths=(1, 2, 3, 4, 6, 8, 12))},
    "smoke": {"binary": ProtocolConfig(num_texts=40, depths=(1, 4, 8, 16)),
              "bytes": ProtocolConfig(num_texts=40, alphabet="bytes", depths=(1, 2, 4))},
}


def protocol_sequences(cfg: ProtocolConfig) -> list[tuple[int, ...]]:
    """The texts of a config as sequences over its alphabet."""
    from elasticity import data

    texts = [e.text for e in data.examples(cfg.dataset, cfg.split, n=cfg.num_texts, seed=0)]
    if cfg.alphabet == "binary":
        return binary_sequences(texts)
    return [tuple(t.encode("utf-8")) for t in texts]


def protocol_table(cfg: ProtocolConfig):
    """One row per depth: `protocol_row` of the config's texts, plus bits per byte of the real code."""
    import pandas as pd

    seqs = protocol_sequences(cfg)
    symbols_per_byte = 8 if cfg.alphabet == "binary" else 1
    alphabet_size = 2 if cfg.alphabet == "binary" else 256
    num_bytes = sum(len(s) for s in seqs) / symbols_per_byte
    rows = []
    for depth in cfg.depths:
        row = protocol_row(seqs, depth)
        row["bits_per_byte"] = row["bits_per_token"] * symbols_per_byte
        table = code_table_bits(HuffmanProtocol.fit(seqs, depth).code, alphabet_size, depth)
        row["table_bits_per_text"] = table / len(seqs)
        row["bits_per_byte_with_table"] = (row["measured_bits"] * len(seqs) + table) / num_bytes
        rows.append(row)
    return pd.DataFrame(rows)


def run(cfg: ProtocolConfig):
    """`protocol_table(cfg)`, cached by config and code (`elasticity.results.load_or_run`)."""
    from elasticity import results

    return results.load_or_run(f"compression_protocol_{cfg.alphabet}", cfg, protocol_table)
