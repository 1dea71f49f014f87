"""Exercise 3.4 (one training step): the check passes a correct step and names each usual mistake."""

import torch
import torch.nn.functional as F

from minitransformer.course import check
from minitransformer.data import IGNORE


def _loss(model, batch, masked=True):
    per_token = F.cross_entropy(model(batch["x"]).flatten(0, 1), batch["y"].flatten(), ignore_index=IGNORE,
                                reduction="none")
    mask = (batch["y"] != IGNORE).flatten()
    return (per_token * mask).sum() / mask.sum() if masked else per_token.mean()


def _clip(model, max_norm):
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)


def correct(model, batch, optimizer, max_norm=1.0):
    loss = _loss(model, batch)
    loss.backward()
    _clip(model, max_norm)
    optimizer.step()
    optimizer.zero_grad()  # clearing after the step is as good as before the backward
    return loss.item()


def no_mask(model, batch, optimizer, max_norm=1.0):
    loss = _loss(model, batch, masked=False)
    optimizer.zero_grad()
    loss.backward()
    _clip(model, max_norm)
    optimizer.step()
    return loss.item()


def no_zero_grad(model, batch, optimizer, max_norm=1.0):
    loss = _loss(model, batch)
    loss.backward()
    _clip(model, max_norm)
    optimizer.step()
    return loss.item()


def step_before_backward(model, batch, optimizer, max_norm=1.0):
    loss = _loss(model, batch)
    optimizer.zero_grad()
    optimizer.step()
    loss.backward()
    _clip(model, max_norm)
    return loss.item()


def no_clip(model, batch, optimizer, max_norm=1.0):
    loss = _loss(model, batch)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def test_a_correct_step_passes_including_the_reference():
    assert check.run("3.4", correct).passed
    assert check.run("3.4", check.core.EXERCISES["3.4"].reference).passed


def test_each_usual_mistake_gets_its_own_feedback():
    assert "only the" in check.run("3.4", no_mask).report() and "answer positions" in check.run("3.4", no_mask).report()
    report = check.run("3.4", no_zero_grad).report()
    assert "zero_grad" in report and "plus the second" in report
    report = check.run("3.4", step_before_backward).report()
    assert not check.run("3.4", step_before_backward).passed and "backward() first" in report
    report = check.run("3.4", no_clip).report()
    assert "clip_grad_norm_" in report and not check.run("3.4", no_clip).passed


def test_a_stub_is_not_attempted():
    def stub(model, batch, optimizer, max_norm=1.0):
        raise NotImplementedError

    assert check.run("3.4", stub).status == "stub"
