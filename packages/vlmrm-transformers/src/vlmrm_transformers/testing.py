"""Tiny random transformers models for tests, examples and benchmarks, built without a network.

Each ``make_tiny_*`` builds a model from a small config with random weights, a word-level
tokenizer (the ``tokenizers`` library) and the model family's image processor, and saves all
three with ``save_pretrained`` into ``folder``; the returned spec ``"hf:<folder>"`` loads them
back through ``from_pretrained``, the path a real checkpoint takes. Their rewards mean nothing;
their shapes, preprocessing and code paths are those of the real families.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Siglip2Config,
    Siglip2ImageProcessor,
    Siglip2Model,
    SiglipConfig,
    SiglipImageProcessor,
    SiglipModel,
    VideoMAEImageProcessor,
    XCLIPConfig,
    XCLIPModel,
)

__all__ = ["make_tiny_clip", "make_tiny_llava", "make_tiny_siglip", "make_tiny_siglip2", "make_tiny_xclip"]

WORDS = (
    "a an the of in on and is this image show does humanoid robot kneeling standing lying walking "
    "cart pole upright car hill top mountain red green blue yes no or answer question user assistant"
).split()
SPECIAL = ("<pad>", "<unk>", "<s>", "</s>", "<image>")
IMAGE_SIZE = 32
PATCH_SIZE = 8
WIDTH = 32  # hidden size of every tiny tower


def _tokenizer(folder: Path) -> PreTrainedTokenizerFast:
    vocab = {token: index for index, token in enumerate((*SPECIAL, *WORDS, "?", ":", ".", ","))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    # Special tokens are matched before the text is split, so "<image><image>" is two image tokens.
    backend.add_special_tokens(list(SPECIAL))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        model_max_length=64,
    )
    tokenizer.save_pretrained(folder)
    return tokenizer


def _tower(**extra: object) -> dict[str, object]:
    return {
        "hidden_size": WIDTH,
        "intermediate_size": 2 * WIDTH,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        **extra,
    }


def _save(model: PreTrainedModel, folder: Path, seed: int) -> str:
    model.save_pretrained(folder)
    return f"hf:{folder}"


def _seeded(seed: int):
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    return generator_state


def make_tiny_clip(folder: str | Path, *, seed: int = 0) -> str:
    """A tiny random ``CLIPModel`` with its tokenizer and image processor; returns ``"hf:<folder>"``."""
    folder = Path(folder)
    tokenizer = _tokenizer(folder)
    config = CLIPConfig(
        text_config=_tower(
            vocab_size=len(tokenizer),
            max_position_embeddings=16,
            eos_token_id=3,
            pad_token_id=0,
            bos_token_id=2,
        ),
        vision_config=_tower(image_size=IMAGE_SIZE, patch_size=PATCH_SIZE),
        projection_dim=16,
    )
    CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE}, crop_size=IMAGE_SIZE).save_pretrained(folder)
    state = _seeded(seed)
    try:
        model = CLIPModel(config)
    finally:
        torch.random.set_rng_state(state)
    return _save(model, folder, seed)


def make_tiny_siglip(folder: str | Path, *, seed: int = 0) -> str:
    """A tiny random ``SiglipModel`` (SigLIP, or a fixed-resolution SigLIP 2); returns ``"hf:<folder>"``."""
    folder = Path(folder)
    tokenizer = _tokenizer(folder)
    config = SiglipConfig(
        text_config=_tower(vocab_size=len(tokenizer), max_position_embeddings=16, pad_token_id=0),
        vision_config=_tower(image_size=IMAGE_SIZE, patch_size=PATCH_SIZE),
    )
    SiglipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(folder)
    state = _seeded(seed)
    try:
        model = SiglipModel(config)
    finally:
        torch.random.set_rng_state(state)
    return _save(model, folder, seed)


def make_tiny_siglip2(folder: str | Path, *, seed: int = 0) -> str:
    """A tiny random ``Siglip2Model`` (SigLIP 2 NaFlex, 16 patches); returns ``"hf:<folder>"``."""
    folder = Path(folder)
    tokenizer = _tokenizer(folder)
    config = Siglip2Config(
        text_config=_tower(vocab_size=len(tokenizer), max_position_embeddings=16, pad_token_id=0),
        vision_config=_tower(num_patches=16, patch_size=PATCH_SIZE),
    )
    Siglip2ImageProcessor(patch_size=PATCH_SIZE, max_num_patches=16).save_pretrained(folder)
    state = _seeded(seed)
    try:
        model = Siglip2Model(config)
    finally:
        torch.random.set_rng_state(state)
    return _save(model, folder, seed)


def make_tiny_xclip(folder: str | Path, *, frames_per_clip: int = 4, seed: int = 0) -> str:
    """A tiny random ``XCLIPModel`` scoring clips of ``frames_per_clip`` frames; returns ``"hf:<folder>"``."""
    folder = Path(folder)
    tokenizer = _tokenizer(folder)
    config = XCLIPConfig(
        text_config=_tower(
            vocab_size=len(tokenizer),
            max_position_embeddings=16,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=3,
        ),
        vision_config=_tower(
            image_size=IMAGE_SIZE,
            patch_size=PATCH_SIZE,
            num_frames=frames_per_clip,
            mit_hidden_size=16,  # the cross-frame transformer works on projected frame embeddings
            mit_intermediate_size=32,
            mit_num_hidden_layers=1,
            mit_num_attention_heads=2,
        ),
        projection_dim=16,
        prompt_layers=1,
        prompt_num_attention_heads=2,
    )
    VideoMAEImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    ).save_pretrained(folder)
    state = _seeded(seed)
    try:
        model = XCLIPModel(config)
    finally:
        torch.random.set_rng_state(state)
    return _save(model, folder, seed)


def make_tiny_llava(folder: str | Path, *, seed: int = 0) -> str:
    """A tiny random ``LlavaForConditionalGeneration`` (CLIP vision tower, Llama language model)
    with a processor that expands ``<image>`` and a plain chat template; returns ``"hf:<folder>"``."""
    folder = Path(folder)
    tokenizer = _tokenizer(folder)
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    assert isinstance(image_token, int)  # one token in, one id out
    config = LlavaConfig(
        vision_config={
            "model_type": "clip_vision_model",
            **_tower(image_size=IMAGE_SIZE, patch_size=PATCH_SIZE),
        },
        text_config={
            "model_type": "llama",
            **_tower(vocab_size=len(tokenizer), max_position_embeddings=64, num_key_value_heads=2),
            "pad_token_id": 0,
            "bos_token_id": 2,
            "eos_token_id": 3,
        },
        image_token_index=image_token,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    image_processor = CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE}, crop_size=IMAGE_SIZE)
    chat_template = (
        "{% for message in messages %}{{ message['role'] }}: "
        "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image> {% else %}"
        "{{ part['text'] }} {% endif %}{% endfor %}{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        chat_template=chat_template,
        num_additional_image_tokens=1,
    ).save_pretrained(folder)
    state = _seeded(seed)
    try:
        model = LlavaForConditionalGeneration(config)
    finally:
        torch.random.set_rng_state(state)
    return _save(model, folder, seed)
