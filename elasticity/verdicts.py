"""Computed verdicts: each claim of the paper a chapter tests, as a record of its numbers beside the paper's.

A verdict is one effect, measured per seed in the paper's direction (positive: as the paper says), judged by the
book's one rule (`stats.effect` and its kin): its mean, 95% interval, seeds, the smallest effect the design
detects with 80% power, and one of four outcomes (`stats.OUTCOMES`). A rebound cannot be judged where nothing
was lifted: such a named precondition that fails makes the outcome "not testable here", with its own number.
"""

from dataclasses import dataclass

import pandas as pd

from elasticity import paper, stats
from elasticity.config import check_types, choice

COLUMNS = ["claim", "chapter", "family", "task", "measure", "ours", "paper", "source", "effect", "low", "high",
           "seeds", "detectable", "outcome", "reason"]


@dataclass(frozen=True)
class Verdict:
    """One claim of the paper (or one part of it), checked by one chapter on one model family.

    Attributes:
        claim: key of `paper.CLAIMS`.
        chapter: the chapter's file stem (its label), where the evidence is shown.
        family: the model family the numbers come from ("" where no model is involved).
        task: the task or part of the claim this row covers ("" when the claim has one part).
        measure: the per-seed effect that is judged, in the paper's direction, with its unit.
        ours: our other figures around it, e.g. the slopes whose difference is the effect.
        paper: the paper's figure, e.g. "27 of 27 cells".
        effect, low, high: the mean effect and its 95% interval (NaN without an interval).
        seeds: the seeds the effect is estimated from (0: an exact computation, no sampling).
        detectable: the smallest effect the design detects with 80% power (NaN without an interval).
        outcome: one of `stats.OUTCOMES`, decided by code, never typed.
        reason: one sentence with the numbers: the test that decided, or the precondition that failed.
    """

    claim: str
    chapter: str
    family: str
    task: str
    measure: str
    ours: str
    paper: str
    effect: float
    low: float
    high: float
    seeds: int
    detectable: float
    outcome: str
    reason: str

    def __post_init__(self) -> None:
        check_types(self)
        choice("claim", self.claim, paper.CLAIMS)
        choice("outcome", self.outcome, stats.OUTCOMES)

    @property
    def source(self) -> str:
        """The paper's table or figure, with its version."""
        return paper.CLAIMS[self.claim].source

    def effect_text(self) -> str:
        """The effect as tables show it: mean, 95% interval, seeds and detectable effect."""
        return stats.effect_text(self.effect, self.low, self.high, self.seeds, self.detectable)


def judged(claim: str, chapter: str, *, family: str, measure: str, effect: stats.Effect, ours: str, paper: str,
           task: str = "", precondition: str | None = None) -> Verdict:
    """The verdict of one effect by the book's rule; "not testable here" when `precondition` names one that
    failed (the effect's numbers are still recorded)."""
    outcome, reason = (stats.NOT_TESTABLE, precondition) if precondition else (effect.outcome, effect.reason)
    return Verdict(claim=claim, chapter=chapter, family=family, task=task, measure=measure, ours=ours, paper=paper,
                   effect=effect.mean, low=effect.low, high=effect.high, seeds=effect.n,
                   detectable=effect.detectable, outcome=outcome, reason=reason)


def precondition_of(what: str, effect: stats.Effect) -> str | None:
    """None when `effect` (a precondition's own effect, e.g. the positive SFT's lift) is reproduced; else the
    sentence saying it failed, with its numbers."""
    if effect.outcome == stats.REPRODUCED:
        return None
    return f"precondition failed: {what} {effect.text()} is not above zero ({effect.outcome})"


def to_frame(verdicts: list[Verdict]) -> pd.DataFrame:
    """A table of verdicts with the paper's source column, in a stable column order (`COLUMNS`)."""
    rows = [{c: (v.source if c == "source" else getattr(v, c)) for c in COLUMNS} for v in verdicts]
    return pd.DataFrame(rows, columns=COLUMNS)


def from_frame(frame: pd.DataFrame) -> list[Verdict]:
    """Verdicts back from a table written by `to_frame` (for example, a cached result)."""
    fields = [c for c in COLUMNS if c != "source"]
    return [Verdict(**{k: (int(row[k]) if k == "seeds" else row[k]) for k in fields})
            for row in frame.to_dict("records")]
