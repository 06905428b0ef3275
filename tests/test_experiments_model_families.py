"""Tests of the model families chapter's tables: the tiny sizes' pre-training and the bits-per-byte table."""

import numpy as np
import pytest

from elasticity import models
from elasticity.config import UserError
from elasticity.experiments import model_families


def test_config_follows_the_scale_and_refuses_a_table_of_another_scale(monkeypatch):
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    assert model_families.config(num_texts=None) == model_families.PRESETS["smoke"]
    with pytest.raises(UserError, match="scale = 'default' but ELASTICITY_SCALE selects 'smoke'"):
        model_families.run(model_families.PRESETS["default"])
    with pytest.raises(UserError, match="num_texts"):
        model_families.config(num_texts=0)


@pytest.mark.slow
def test_smoke_tables(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    monkeypatch.setenv("ELASTICITY_SCALE", "smoke")
    tiny = model_families.tiny_table()
    assert list(tiny["size"]) == list(models.sizes("tiny")) and (tiny["num_parameters"] > 0).all()
    bpb = model_families.load_or_run(model_families.config(num_texts=4))
    assert len(bpb) == len(models.sizes("tiny")) * len(models.budgets("tiny"))
    assert np.isfinite(bpb["bits_per_byte"]).all() and (bpb["bits_per_byte"] > 0).all()
    assert (bpb["num_texts"] == 4).all()
