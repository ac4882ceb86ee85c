"""An out-of-memory error is told apart by its type: it propagates, never becomes a one-line usage error."""

import click
import pytest
import torch
import vlmrm_reward
from vlmrm_cli.cli import load_reward_model_or_fail


def _raising(error: BaseException):
    def load_reward_model(*args, **kwargs):
        raise error

    return load_reward_model


def test_out_of_memory_propagates(monkeypatch):
    monkeypatch.setattr(vlmrm_reward, "load_reward_model", _raising(torch.OutOfMemoryError("no memory left")))
    with pytest.raises(torch.OutOfMemoryError):
        load_reward_model_or_fail("ViT-B-32")


def test_a_load_failure_that_mentions_memory_is_still_a_usage_error(monkeypatch):
    monkeypatch.setattr(vlmrm_reward, "load_reward_model", _raising(RuntimeError("file says out of memory")))
    with pytest.raises(click.UsageError, match="cannot load"):
        load_reward_model_or_fail("ViT-B-32")
