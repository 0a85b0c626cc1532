"""Token-level objectives of the learner. Plain torch, no DeepSpeed, no Ray.

Batches follow `tracer1.models.inputs.encode_for_training`: `input_ids` and `attention_mask` (B, L) hold prompt
and completion side by side, `completion_mask` (B, L) is 1 on completion tokens, and vision inputs ride along
for VL models. Log-probs are (B, L) and aligned with `input_ids` (`sequence_logprobs`)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from tracer1.learner.grpo import aggregate
from tracer1.models.inputs import sequence_logprobs


def sft_loss(logits: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """Negative log-likelihood of the completion tokens, token-mean (prompt tokens are not trained on)."""
    mask = batch["completion_mask"].float()
    loss = -aggregate(sequence_logprobs(logits, batch["input_ids"]), mask, "token-mean")
    with torch.no_grad():
        predicted = torch.zeros_like(mask)
        predicted[:, 1:] = (logits[:, :-1].argmax(-1) == batch["input_ids"][:, 1:]).float()
        accuracy = aggregate(predicted, mask, "token-mean")
    return loss, {"loss": loss.item(), "token_accuracy": accuracy.item(), "tokens": mask.sum().item()}
