"""Measuring a model in evaluation mode without losing its training mode (torch is imported when it is used)."""

import contextlib
import functools


@contextlib.contextmanager
def evaluating(*models):
    """Eval mode and no gradients for `models` inside the context; each one's train/eval mode after it."""
    import torch

    modes = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, training in zip(models, modes, strict=True):
            m.train(training)


def no_grad(fn):
    """`torch.no_grad()` as a decorator that imports torch when `fn` is called, not when it is defined."""

    @functools.wraps(fn)
    def without_gradients(*args, **kwargs):
        import torch

        with torch.no_grad():
            return fn(*args, **kwargs)

    return without_gradients
