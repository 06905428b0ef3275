"""The numbers and shapes the paper reports, each with its table or figure, version and source.

Sources are those of the paper digest (`book/sources.md`): the paper's own tables could not be read,
so every value here is a third-party transcription (`PN`: Paper Note; `CY-F`: the cyberchitta
finding page), cross-checked where two agree. Table and figure numbers follow arXiv v4/v6.
"""

from dataclasses import dataclass

import pandas as pd

PAPER = "Ji et al., Language Models Resist Alignment: Evidence From Data Compression, ACL 2025 (arXiv 2406.06144)"
VERSION = "arXiv v4/v6"


@dataclass(frozen=True)
class Claim:
    """A qualitative result of the paper that a chapter tests."""

    key: str
    statement: str
    source: str  # table or figure, and version
    transcribed_by: str  # digest source key(s)


def table1_resistance() -> pd.DataFrame:
    """Table 1 (v4/v6): final SFT loss of inverse vs forward alignment between SFT checkpoints.

    One row per known cell: `pair` names the checkpoints (k, l), `inverse_loss` is theta_l trained on
    D_k, `forward_loss` is theta_k trained on D_l. Only 10 of the 27 cells were transcribed.
    """
    rows = [
        ("Alpaca", "Llama2-7B", (1, 2), 0.159, 0.202, "PN"),
        ("Alpaca", "Llama2-7B", (2, 3), 0.195, 0.214, "PN"),
        ("Alpaca", "Llama2-7B", (1, 3), 0.167, 0.235, "PN"),
        ("Alpaca", "Llama2-13B", (1, 2), 0.177, 0.196, "PN"),
        ("Alpaca", "Llama2-13B", (2, 3), 0.215, 0.241, "PN"),
        ("Alpaca", "Llama2-13B", (1, 3), 0.184, 0.235, "PN"),
        ("Alpaca", "Llama3-8B", (1, 2), 0.254, 0.257, "PN"),
        ("Alpaca", "Llama3-8B", (2, 3), 0.2268, 0.3229, "PN, CY-F"),
        ("Alpaca", "Llama3-8B", (1, 3), 0.234, 0.323, "PN"),
        ("TruthfulQA", "Llama2-7B", (2, 3), 0.1719, 0.1721, "CY-F"),
    ]
    frame = pd.DataFrame(rows, columns=["dataset", "model", "pair", "inverse_loss", "forward_loss", "transcribed_by"])
    frame["source"] = f"Table 1, {VERSION}"
    return frame


# Table 1 as a whole: inverse < forward in all 27 cells (3 models x 3 datasets x 3 pairs) [S1 CY-F].
TABLE1_CELLS_INVERSE_LOWER = 27
TABLE1_CELLS = 27


def table2_kl_change() -> pd.DataFrame:
    """Table 2 (App. B.1, v4/v6): KL change under forward vs inverse alignment, Llama2-7B, finer checkpoints.

    Only the theta_1/theta_2 pair was transcribed; forward > inverse is reported for all seven pairs.
    """
    frame = pd.DataFrame(
        [("Llama2-7B", (1, 2), 0.4568, 0.2796, "CY-F")],
        columns=["model", "pair", "forward_kl_change", "inverse_kl_change", "transcribed_by"],
    )
    frame["source"] = f"Table 2 (App. B.1), {VERSION}"
    return frame


TABLE2_PAIRS = 7  # forward > inverse in all of them [S1 CY-F]


def table3_kl_to_base() -> pd.DataFrame:
    """Table 3 (App. B.2, v4/v6): KL to the base model after safety SFT, and unsafe examples to undo it.

    `kl_to_base` after SFT on `positive_size` safe examples; `negative_to_epsilon` is the number of
    unsafe examples that bring the KL to the base below epsilon = 0.01. PN and CY-F agree on every number.
    """
    kl = {"Llama2-7B": (0.21, 0.22, 0.26, 0.27), "Gemma-2B": (0.18, 0.21, 0.24, 0.25)}
    undo = {"Llama2-7B": (961, 844, 801, 729), "Gemma-2B": (923, 853, 709, 598)}
    rows = [
        (model, size, kl[model][i], undo[model][i])
        for model in kl
        for i, size in enumerate((1000, 2000, 5000, 10000))
    ]
    frame = pd.DataFrame(rows, columns=["model", "positive_size", "kl_to_base", "negative_to_epsilon"])
    frame["source"] = f"Table 3 (App. B.2), {VERSION}"
    frame["transcribed_by"] = "PN, CY-F"
    return frame


TABLE3_EPSILON = 0.01

# The paper's experimental grids (§5.2, §5.3).
REBOUND_POSITIVE_SIZES = (1000, 2000, 5000, 10000)
REBOUND_NEGATIVE_SIZES = (100, 200, 500, 1000, 2000)
RESISTANCE_MODELS = ("Llama2-7B", "Llama2-13B", "Llama3-8B")
# Their parameter counts as their model cards publish them (the paper names the models, not the counts).
RESISTANCE_MODEL_PARAMETERS = {"Llama2-7B": 6.74e9, "Llama2-13B": 13.0e9, "Llama3-8B": 8.03e9}
RESISTANCE_DATASETS = ("Alpaca", "TruthfulQA", "BeaverTails")
QWEN_SIZES = ("Qwen1.5-0.5B", "Qwen1.5-4B", "Qwen1.5-7B")
TINYLLAMA_TOKENS = ("0.1T", "0.5T", "1.0T", "2.0T", "2.5T", "3.0T")

# Theorem 4.2 (§4): d gamma_a / dl = Theta(-k d gamma_p / dl), k = |D_p| / |D_a| >> 1; PN: k is
# "typically 1e3 to 1e6" [S1]. The experiments never estimate k [CY-F].
THEOREM_K_TYPICAL = (1e3, 1e6)

CLAIMS = {
    c.key: c
    for c in (
        Claim("theorem_3_4", "Under the compression protocol a response x costs ceil(|x|/d) ceil(H_d) bits in "
              "expectation, H_d the entropy of the token tree pruned at depth d.", f"Theorem 3.4, {VERSION}", "KO"),
        Claim("log_loss_is_code_length", "Training a model is compressing its data: the code length of data under "
              "the model is its negative log-likelihood, so minimising the training loss minimises the compression "
              "rate.", f"Section 3 (compression rate), {VERSION}", "PN"),
        Claim("resistance", "Inverse alignment reaches a lower final SFT loss than forward alignment, in 27 of 27 "
              "cells.", f"Table 1, {VERSION}", "PN, CY-F"),
        Claim("resistance_kl", "Forward alignment changes the KL more than inverse alignment, in 7 of 7 pairs.",
              f"Table 2 (App. B.1), {VERSION}", "CY-F"),
        Claim("rebound_two_phase", "Under negative fine-tuning the score falls fast over the first examples, then "
              "the decline slows.", f"Figure 4, {VERSION}", "CY-F, KO, PN"),
        Claim("rebound_positive_size", "More positive data gives a higher start and a faster initial drop.",
              f"Figure 4, {VERSION}", "CY-F, KO, PN"),
        Claim("rebound_below_base", "IMDb curves fall below the base model's level; BeaverTails curves converge "
              "near it.", f"Figure 4, {VERSION}", "CY-F, KO"),
        Claim("model_size", "Larger models show a faster initial decline (Qwen1.5 0.5B < 4B < 7B).",
              f"Figures 5 and 9, {VERSION}", "CY-F, KO, PN"),
        Claim("pretraining_volume", "More pre-training tokens give a faster rebound.",
              f"Figures 6 and 10, {VERSION}", "CY-F, PN"),
        Claim("pretraining_threshold", "At 0.1T pre-training tokens the score barely moves under negative data; "
              "the effect has appeared by 0.5T.",
              f"Figures 6 and 10, {VERSION}", "CY-F, PN"),
        Claim("kl_table", "More safety data gives a larger KL to the base yet fewer unsafe examples to return "
              "below epsilon = 0.01.", f"Table 3 (App. B.2), {VERSION}", "PN, CY-F"),
        Claim("preference_ablation", "The rebound ordering of Figure 4 (more positive data: higher start, faster "
              "initial drop) holds when the reverse step uses PPO, DPO, KTO or SimPO.", f"Figure 7, {VERSION}",
              "CY-F, PN"),
        Claim("reversed_direction", "With negative data first and positive data after it, the model shows the "
              "same elasticity pattern (a fast change over the first examples of the second step, then a slower "
              "one).", f"Figure 8, {VERSION}", "CY-F, PN"),
        Claim("theorem_4_2", "The normalized compression rate of the alignment set changes Theta(k) times faster "
              "than that of the pre-training set, with opposite sign.", f"Theorem 4.2, {VERSION}", "KO, PN, CY-F"),
    )
}
