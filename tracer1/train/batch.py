"""From scored rollouts to the learner's micro-batches (stages 1 and 2).

    groups (G plans per sample) + rewards (P × G) → advantages per group → drop groups with no spread
    → (prompt, sampled ids, advantage) rows → `accumulation` micro-batches with `loss_denominator`

Each group carries its prompt as the rollout worker encoded it (the ids and image patches the engine sampled
from), so nothing is encoded again here; sampled token ids are used unchanged, never re-tokenised from text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from tracer1.learner.grpo import group_advantages
from tracer1.models.inputs import encode_for_training
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


def training_batches(bundle, groups: Sequence[Group], rewards: Sequence[Sequence[float]], algorithm, *,
                     accumulation: int) -> tuple[list[dict[str, torch.Tensor]], BatchStats]:
    """`rewards[i]` scores `groups[i]`'s plans; `bundle` pads the rows. Returns exactly `accumulation` micro-batches
    (a learner step) — none when every group was filtered out — and the stats."""
    if len(groups) != len(rewards) or any(len(g.completions) != len(r) for g, r in zip(groups, rewards)):
        raise ValueError(f"{len(groups)} groups and {len(rewards)} reward rows; give one row per group, one reward "
                         "per plan")
    r = torch.tensor([list(row) for row in rewards], dtype=torch.float64)
    advantages, informative = group_advantages(r, scale_by_std=algorithm.scale_adv_by_std, eps=algorithm.adv_eps)
    keep = informative if algorithm.filter_flat_groups else torch.ones_like(informative)
    rows = []
    for i, group in enumerate(groups):
        if keep[i]:
            rows += [(group.prompt, c.token_ids, float(advantages[i, j])) for j, c in enumerate(group.completions)]
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
