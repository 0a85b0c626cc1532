"""From scored rollouts to the learner's micro-batches (stages 1 and 2).

    groups (G plans per sample) + rewards (P × G) → advantages per group → drop groups with no spread
    → (prompt, sampled ids, advantage) rows → `accumulation` micro-batches with `loss_denominator`

Prompts are re-encoded from the samples with the prompt builder the rollout workers used; a prompt whose ids
differ from the ones the engine saw is an error naming the sample (the ratio would compare different
sequences). Sampled token ids are used unchanged, never re-tokenised from text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from tracer1.learner.grpo import group_advantages
from tracer1.models.inputs import encode_for_training, encode_prompts
from tracer1.rollout import Group


@dataclass
class BatchStats:
    groups: int
    kept_groups: int
    plans: int
    tokens: int
    reward_mean: float
    reward_std: float


def split_evenly(count: int, parts: int) -> list[slice]:
    """`parts` contiguous slices of range(count) whose sizes differ by at most one (empty ones last)."""
    size, extra = divmod(count, parts)
    bounds, start = [], 0
    for i in range(parts):
        end = start + size + (i < extra)
        bounds.append(slice(start, end))
        start = end
    return bounds


def training_batches(bundle, prompts: Sequence, groups: Sequence[Group], rewards: Sequence[Sequence[float]],
                     algorithm, *, accumulation: int) -> tuple[list[dict[str, torch.Tensor]], BatchStats]:
    """`prompts[i]` is the `Prompt` of `groups[i]`'s sample (built by `RolloutWorker.prompts`). Returns exactly
    `accumulation` micro-batches (a learner step) — none when every group was filtered out — and the stats."""
    if not (len(prompts) == len(groups) == len(rewards)):
        raise ValueError(f"{len(prompts)} prompts, {len(groups)} groups and {len(rewards)} reward rows; "
                         "give one of each per sample")
    r = torch.tensor([list(row) for row in rewards], dtype=torch.float64)
    advantages, informative = group_advantages(r, scale_by_std=algorithm.scale_adv_by_std, eps=algorithm.adv_eps)
    keep = informative if algorithm.filter_flat_groups else torch.ones_like(informative)
    encoded = encode_prompts(bundle, prompts)
    rows = []
    for i, (group, enc) in enumerate(zip(groups, encoded)):
        if list(enc.input_ids) != list(group.prompt_token_ids):
            raise ValueError(f"sample {group.sample_id}: the learner's prompt ids differ from the rollout's "
                             f"({len(enc.input_ids)} vs {len(group.prompt_token_ids)} tokens); the planner, its "
                             "tokenizer or the prompt settings differ between the rollout workers and the learner")
        if keep[i]:
            rows += [(enc, c.token_ids, float(advantages[i, j])) for j, c in enumerate(group.completions)]
    tokens = sum(len(ids) for _, ids, _ in rows)
    stats = BatchStats(groups=len(groups), kept_groups=int(keep.sum()), plans=len(rows), tokens=tokens,
                       reward_mean=float(r.mean()), reward_std=float(r.std()) if r.numel() > 1 else 0.0)
    if not rows:
        return [], stats
    parts = [rows[s] for s in split_evenly(len(rows), min(accumulation, len(rows)))]
    # Exact full-batch aggregation under accumulation (see tracer1.learner.grpo): one denominator per step.
    count = tokens if algorithm.loss_agg == "token-mean" else len(rows)
    micro_batches = []
    for part in parts:
        batch = encode_for_training(bundle, [p for p, _, _ in part], [ids for _, ids, _ in part])
        batch["advantages"] = torch.tensor([a for _, _, a in part], dtype=torch.float32)
        batch["loss_denominator"] = torch.tensor(count / accumulation, dtype=torch.float32)
        micro_batches.append(batch)
    while len(micro_batches) < accumulation:  # fewer plans than micro-batches: pad with a batch that adds 0
        empty = dict(micro_batches[-1])
        empty["completion_mask"] = torch.zeros_like(empty["completion_mask"])
        micro_batches.append(empty)
    return micro_batches, stats
