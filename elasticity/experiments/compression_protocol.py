"""The compression protocol on real text: Theorem 3.4's code-length formula against real Huffman codes."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

import elasticity.config
from elasticity import results, stats, tokentree, verdicts

NAME = "compression_protocol"
CHAPTER = "compression_protocol"
CLAIMS = ("theorem_3_4",)


@dataclass(frozen=True)
class Config:
    """The texts coded and the pruning depths: one `tokentree.ProtocolConfig` per alphabet."""

    binary: tokentree.ProtocolConfig
    bytes: tokentree.ProtocolConfig

    def __post_init__(self) -> None:
        elasticity.config.check_types(self)


PRESETS = {scale: Config(**alphabets) for scale, alphabets in tokentree.PRESETS.items()}


def config(*, dataset: str | None = None, split: str | None = None, num_texts: int | None = None,
           binary_depths: tuple[int, ...] | None = None, byte_depths: tuple[int, ...] | None = None) -> Config:
    """The preset of the current scale with the non-None overrides (texts shared by both alphabets)."""
    preset = PRESETS[elasticity.config.scale()]
    texts = dict(dataset=dataset, split=split, num_texts=num_texts)
    return Config(binary=elasticity.config.replace(preset.binary, **texts, depths=binary_depths),
                  bytes=elasticity.config.replace(preset.bytes, **texts, depths=byte_depths))


def judge(tables: dict[str, pd.DataFrame], chapter: str = CHAPTER) -> list[verdicts.Verdict]:
    """Theorem 3.4's verdict: the formula within `tokentree.FORMULA_TOLERANCE` of the measured code length
    at every depth of every table (`tokentree.protocol_table`s by name: here both alphabets; the theory chapter
    judges its toy tree with it). Huffman codes are exact, so the effect (the tolerance less the worst
    gap) is computed exactly (`stats.exact`), without seeds or interval."""
    both = pd.concat([t.assign(alphabet=a) for a, t in tables.items()], ignore_index=True)
    gap = tokentree.formula_gap(both.paper_formula_bits, both.measured_bits)
    worst = both.loc[gap.idxmax()]
    return [verdicts.judged(
        "theorem_3_4", chapter, family="", task=", ".join(tables),
        measure=(f"tolerance {tokentree.FORMULA_TOLERANCE:g} - worst relative gap between the formula and the "
                 "measured Huffman code length"),
        effect=stats.exact(tokentree.FORMULA_TOLERANCE - float(gap.max()), "tolerance - worst gap"),
        ours=(f"formula vs real Huffman codes: mean gap {100 * float(gap.mean()):.1f}%, worst "
              f"{100 * float(gap.max()):.1f}% ({worst.alphabet}, d = {int(worst.depth)}) over {len(both)} "
              "settings"),
        paper="a closed form; no code lengths reported",
    )]


def run(cfg: Config) -> dict:
    """The protocol tables of both alphabets (`tokentree.run`, cached each) and the verdict.

    Returns:
        `binary`, `bytes` (see `tokentree.protocol_table`) and `verdicts` (claim `theorem_3_4`).
    """
    tables = {"binary": tokentree.run(cfg.binary), "bytes": tokentree.run(cfg.bytes)}
    return {**tables, "verdicts": verdicts.to_frame(judge(tables))}


def load_or_run(cfg: Config) -> dict:
    """The cached result of `run(cfg)`, computed on first use."""
    return results.load_or_run(NAME, cfg, run)

