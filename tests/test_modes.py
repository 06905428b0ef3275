import pytest
import torch

from elasticity.modes import evaluating


def test_eval_mode_without_gradients_inside_and_each_mode_back_after():
    training, frozen = torch.nn.Linear(2, 2).train(), torch.nn.Linear(2, 2).eval()
    with evaluating(training, frozen):
        assert not training.training and not frozen.training
        assert not torch.is_grad_enabled() and not training(torch.ones(1, 2)).requires_grad
    assert training.training and not frozen.training and torch.is_grad_enabled()


def test_modes_come_back_when_the_measurement_fails():
    model = torch.nn.Dropout().train()
    with pytest.raises(RuntimeError, match="boom"), evaluating(model):
        raise RuntimeError("boom")
    assert model.training and torch.is_grad_enabled()
