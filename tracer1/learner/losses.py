"""Token-level objectives of the learner. Plain torch, no DeepSpeed, no Ray.

Batches follow `tracer1.models.inputs.encode_for_training`: `input_ids` and `attention_mask` (B, L) hold prompt
and completion side by side, `completion_mask` (B, L) is 1 on completion tokens, and vision inputs ride along
for VL models. Log-probs are (B, L) and aligned with `input_ids` (`sequence_logprobs`)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from tracer1.learner.grpo import aggregate
from tracer1.models.inputs import sequence_logprobs


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` where `mask` is 1 (token-mean over the whole batch); 0 when the mask is empty."""
    return aggregate(values, mask, "token-mean")


def sft_loss(logits: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """Negative log-likelihood of the completion tokens, token-mean (prompt tokens are not trained on)."""
    mask = batch["completion_mask"].float()
    loss = -masked_mean(sequence_logprobs(logits, batch["input_ids"]), mask)
    with torch.no_grad():
        predicted = torch.zeros_like(mask)
        predicted[:, 1:] = (logits[:, :-1].argmax(-1) == batch["input_ids"][:, 1:]).float()
        accuracy = masked_mean(predicted, mask)
    return loss, {"loss": loss.item(), "token_accuracy": accuracy.item(), "tokens": mask.sum().item()}
