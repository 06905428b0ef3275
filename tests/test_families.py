"""Tests of elasticity.families: the registry, parameter counts and training memory, without torch."""

import subprocess
import sys

import pytest

from elasticity import families, models
from elasticity.config import UserError


def test_the_registry_imports_no_torch():
    code = "import sys, elasticity.families; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "False"


def test_models_re_exports_the_registry():
    assert models.FAMILIES is families.FAMILIES
    assert models.family("tiny") is families.FAMILIES["tiny"]
    with pytest.raises(UserError, match="unknown family 'nope'; accepted: tiny, smollm2-135m"):
        families.family("nope")


def test_training_bytes_count_weights_gradients_and_adam_moments():
    assert families.training_bytes(10**9, 2, lora=False) == int(10**9 * 12 * 1.2)
    assert families.training_bytes(10**9, 4, lora=False) == int(10**9 * 16 * 1.2)
    assert families.training_bytes(10**9, 4, lora=True) == int(10**9 * 4 * 1.2)


def test_largest_num_parameters():
    assert families.largest_num_parameters("qwen1.5") == 7_720_000_000
    assert families.largest_num_parameters("tinyllama-1.1b") == 1_100_048_384
    assert families.largest_num_parameters("smollm2-135m") == 135_000_000
    # the offline count of the tiny family bounds its real sizes, counted from their configs
    tiny = [row["num_parameters"] for row in models.info("tiny")]
    assert max(tiny) <= families.largest_num_parameters("tiny") < 1.2 * max(tiny)
