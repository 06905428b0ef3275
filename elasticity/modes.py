"""Measuring a model in evaluation mode without losing its training mode."""

import contextlib

import torch


@contextlib.contextmanager
def evaluating(*models):
    """Eval mode and no gradients for `models` inside the context; each one's train/eval mode after it."""
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, training in zip(models, modes, strict=True):
            m.train(training)
