"""Specs, cache and offline rules: a missing model fails at once in one line."""

from __future__ import annotations

import time

import pytest
from vlmrm_reward import load_reward_model
from vlmrm_transformers import loading


def test_a_bare_folder_loads_like_its_hf_spec(tiny_specs):
    folder = tiny_specs["clip"].removeprefix("hf:")
    with load_reward_model(folder, backend="transformers", target_prompts=["a robot"], device="cpu") as model:
        by_folder = model.embed_text(["a robot"])
    with load_reward_model(
        tiny_specs["clip"], backend="transformers", target_prompts=["a robot"], device="cpu"
    ) as model:
        by_spec = model.embed_text(["a robot"])
    assert (by_folder == by_spec).all()


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no folder"):
        load_reward_model(f"hf:{tmp_path}/nothing", backend="transformers", target_prompts=["a robot"])


def test_an_uncached_repository_without_a_hub_fails_fast_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    began = time.perf_counter()
    with pytest.raises(OSError) as raised:
        load_reward_model(
            "hf:google/siglip-base-patch16-224",
            backend="transformers",
            target_prompts=["a robot"],
            cache_dir=str(tmp_path),
        )
    assert time.perf_counter() - began < 20  # the Hub client alone would retry for about 30 s
    message = str(raised.value)
    assert "\n" not in message and "google/siglip-base-patch16-224" in message and str(tmp_path) in message


def test_an_unreachable_hub_is_found_by_one_short_probe(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(loading, "_hub_reachable", lambda: False)
    with pytest.raises(OSError, match="cannot be reached"):
        load_reward_model(
            "hf:google/siglip-base-patch16-224",
            backend="transformers",
            target_prompts=["a"],
            cache_dir=str(tmp_path),
        )


def test_a_model_of_another_kind_is_refused(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(
        BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    ).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="is a 'bert' model; the transformers backend takes clip, siglip"):
        load_reward_model(f"hf:{tmp_path}", backend="transformers", target_prompts=["a robot"])


def test_a_half_precision_checkpoint_loads_in_fp32_and_scores_on_the_cpu(tiny_specs, tmp_path):
    import shutil

    import numpy as np
    import torch
    from transformers import AutoModel

    folder = tiny_specs["clip"].removeprefix("hf:")
    AutoModel.from_pretrained(folder).to(torch.float16).save_pretrained(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"):
        shutil.copy(f"{folder}/{name}", tmp_path / name)
    frames = np.zeros((2, 32, 32, 3), np.uint8)
    with load_reward_model(
        f"hf:{tmp_path}", backend="transformers", target_prompts=["a robot"], device="cpu"
    ) as model:
        assert np.isfinite(model(frames)).all()
