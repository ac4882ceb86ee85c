"""Instruction-tuned VLMs from transformers as yes/no judges: LLaVA and other image-text-to-text
models whose processor gives ``pixel_values`` of shape (N, 3, H, W) and one fixed number of image
tokens per image (tested with LLaVA; models that tile images or cut them into a variable number of
patches, such as LLaVA-NeXT or Qwen2-VL, are not supported).

The question is put in the processor's chat template (a plain ``"USER: <image>\\n... ASSISTANT:"``
prompt when it has none) and tokenised once per question; every frame of a batch shares those
token ids, with its own pixels preprocessed on the device. One forward pass per batch reads the
logits of the first answer token: the log-odds of "yes" against "no", each summed over the
spellings the tokenizer knows ("yes", "Yes", " yes", ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from vlmrm_reward import PreprocessConfig

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = ["ANSWER_INSTRUCTION", "VLMJudgeBackend"]

ANSWER_INSTRUCTION = "Answer yes or no."
_SPELLINGS = {"yes": ("yes", "Yes", "YES", " yes", " Yes"), "no": ("no", "No", "NO", " no", " No")}


def _token_ids(tokenizer: Any, answer: str) -> list[int]:
    ids = set()
    for spelling in _SPELLINGS[answer]:
        encoded = tokenizer.encode(spelling, add_special_tokens=False)
        if encoded and encoded[0] != tokenizer.unk_token_id:
            ids.add(encoded[0])
    if not ids:
        raise ValueError(f"the tokenizer has no token for {answer!r}, so it cannot judge yes/no")
    return sorted(ids)


class VLMJudgeBackend:
    """A transformers image-text-to-text model as a ``vlmrm_reward.JudgeBackend``."""

    def __init__(self, model: PreTrainedModel, processor: Any, preprocess_config: PreprocessConfig) -> None:
        self.model = model.eval().requires_grad_(False)
        self.processor = processor
        self.preprocess_config = preprocess_config
        tokenizer = processor.tokenizer
        self.yes_ids, self.no_ids = _token_ids(tokenizer, "yes"), _token_ids(tokenizer, "no")
        if set(self.yes_ids) & set(self.no_ids):
            raise ValueError("the tokenizer spells 'yes' and 'no' with a shared token")
        self._prompts: dict[str, dict[str, torch.Tensor]] = {}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: torch.device) -> VLMJudgeBackend:
        self.model.to(device)
        self._prompts.clear()
        return self

    def prompt_text(self, question: str) -> str:
        """The text the model reads before its answer, image placeholder included."""
        text = f"{question} {ANSWER_INSTRUCTION}"
        if getattr(self.processor, "chat_template", None):
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
            return self.processor.apply_chat_template(messages, add_generation_prompt=True)
        return f"USER: <image>\n{text} ASSISTANT:"

    def _prompt(self, question: str) -> dict[str, torch.Tensor]:
        if question not in self._prompts:
            # The processor expands the image placeholder to as many tokens as the image gives;
            # a blank image of the preprocessed size fixes that count for every frame.
            height, width = self.preprocess_config.size
            blank = np.zeros((height, width, 3), dtype=np.uint8)
            inputs = self.processor(images=[blank], text=[self.prompt_text(question)], return_tensors="pt")
            self._prompts[question] = {
                key: value.to(self.device)
                for key, value in inputs.items()
                if key not in ("pixel_values",) and isinstance(value, torch.Tensor)
            }
        return self._prompts[question]

    def yes_log_odds(self, pixels: torch.Tensor, question: str) -> torch.Tensor:
        prompt = self._prompt(question)
        batch = {key: value.expand(len(pixels), *value.shape[1:]) for key, value in prompt.items()}
        output = self.model(**batch, pixel_values=pixels.to(self.model.dtype), logits_to_keep=1)
        log_probs = output.logits[:, -1].float().log_softmax(dim=-1)
        return log_probs[:, self.yes_ids].logsumexp(dim=-1) - log_probs[:, self.no_ids].logsumexp(dim=-1)
