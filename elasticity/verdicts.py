"""Computed verdicts: each claim of the paper a chapter tests, our measured figure beside the paper's."""

from dataclasses import dataclass
from typing import Literal

import pandas as pd

from elasticity import paper, stats
from elasticity.config import check_types, choice

Outcome = Literal["reproduced", "not reproduced", "not comparable"]


@dataclass(frozen=True)
class Verdict:
    """One claim of the paper, checked by one chapter.

    Attributes:
        claim: key of `paper.CLAIMS`.
        chapter: the chapter's file stem (its label), where the evidence is shown.
        ours: our measured figure with its uncertainty, e.g. "9 of 12 cells (3 seeds)".
        paper: the paper's figure, e.g. "27 of 27 cells".
        outcome: reproduced | not reproduced | not comparable, decided by code, never typed.
        reason: one sentence: the test that decided the outcome, or why it is not comparable.
    """

    claim: str
    chapter: str
    ours: str
    paper: str
    outcome: Outcome
    reason: str

    def __post_init__(self) -> None:
        check_types(self)
        choice("claim", self.claim, paper.CLAIMS)

    @property
    def source(self) -> str:
        """The paper's table or figure, with its version."""
        return paper.CLAIMS[self.claim].source


def decide(holds: bool | None, *, comparable: bool = True) -> Outcome:
    """The outcome word for a test that held (True), failed (False) or could not be run (None)."""
    if not comparable or holds is None:
        return "not comparable"
    return "reproduced" if holds else "not reproduced"


def t_text(n: int, level: float = 0.95) -> str:
    """How the threshold of `stats.above_zero` reads in a verdict's reason: 't(0.95, 2) = 2.92 standard errors'."""
    if n < 2:
        return "t standard errors"
    return f"t({level:g}, {n - 1}) = {stats.t_critical(n, level):.2f} standard errors"


def pm_text(n: int) -> str:
    """What '±' means in a verdict whose figures are means over n seeds: '± is 1 SE over 3 seeds'."""
    return f"± is 1 SE over {n} seeds"


def to_frame(verdicts: list[Verdict]) -> pd.DataFrame:
    """A table of verdicts with the paper's source column, in a stable column order."""
    rows = [
        {"claim": v.claim, "chapter": v.chapter, "ours": v.ours, "paper": v.paper, "source": v.source,
         "outcome": v.outcome, "reason": v.reason}
        for v in verdicts
    ]
    return pd.DataFrame(rows, columns=["claim", "chapter", "ours", "paper", "source", "outcome", "reason"])


def from_frame(frame: pd.DataFrame) -> list[Verdict]:
    """Verdicts back from a table written by `to_frame` (for example, a cached result)."""
    return [Verdict(**{k: row[k] for k in ("claim", "chapter", "ours", "paper", "outcome", "reason")})
            for row in frame.to_dict("records")]
