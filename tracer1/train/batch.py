"""From scored rollouts to the learner's micro-batches (stages 1 and 2: `training_batches`; stage 3: `episode_batches`).

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
            rows += [(group.prompt, c, float(advantages[i, j])) for j, c in enumerate(group.completions)]
    stats = BatchStats(groups=len(groups), kept_groups=int(keep.sum()), plans=len(rows),
                       tokens=sum(len(c.token_ids) for _, c, _ in rows), reward_mean=float(r.mean()),
                       reward_std=float(r.std()) if r.numel() > 1 else 0.0)
    return pack_rows(bundle, rows, algorithm, accumulation=accumulation), stats


def episode_batches(bundle, groups: Sequence[Sequence], returns: Sequence[Sequence[float]], algorithm, *,
                    weighting: str, accumulation: int) -> tuple[list[dict[str, torch.Tensor]], BatchStats]:
    """Stage 3: `groups[i]` holds the G `PlayedEpisode`s of one task and `returns[i]` their returns. Each episode's
    group-normalised return A_e goes to every one of its decisions, scaled by the weighting:

        episode:  w_d = D̄ / n_e   (n_e: the episode's decisions, D̄: their mean over the kept groups)
        decision: w_d = 1

    With `episode`, the decisions of an episode share one episode's weight, so a failing episode that looped for
    20 decisions moves the policy no more than a success in 3 (with `decision` it would move it ~7× more, and
    failures, being longer, would dominate every group); D̄ keeps the mean weight of a decision at 1, so the
    learning rate means what it means in stages 1–2. Groups are the loop's explicit task groups, never rebuilt
    from positions in a flat list of decisions (which would mix decisions of different prompts and episodes)."""
    if weighting not in ("episode", "decision"):
        raise ValueError(f"unknown episode weighting {weighting!r}; choose episode or decision")
    if len(groups) != len(returns) or any(len(g) != len(r) for g, r in zip(groups, returns)):
        raise ValueError(f"{len(groups)} groups and {len(returns)} return rows; give one return per episode")
    if not groups:  # every group lost an episode
        return [], BatchStats(groups=0, kept_groups=0, plans=0, tokens=0, reward_mean=0.0, reward_std=0.0)
    per_group = [group_advantages([list(row)], scale_by_std=algorithm.scale_adv_by_std, eps=algorithm.adv_eps)
                 for row in returns]  # one at a time: groups may differ in size
    keep = [bool(informative[0]) or not algorithm.filter_flat_groups for _, informative in per_group]
    kept = [(i, e) for i, group in enumerate(groups) if keep[i] for e in range(len(group))]
    mean_decisions = sum(len(groups[i][e].decisions) for i, e in kept) / len(kept) if kept else 0.0
    rows = []
    for i, e in kept:
        episode = groups[i][e]
        weight = 1.0 if weighting == "decision" else mean_decisions / len(episode.decisions)
        advantage = float(per_group[i][0][0, e]) * weight
        rows += [(d.prompt, d.completions[0], advantage) for d in episode.decisions]
    r = torch.tensor([x for row in returns for x in row], dtype=torch.float64)
    stats = BatchStats(groups=len(groups), kept_groups=sum(keep), plans=len(rows),
                       tokens=sum(len(c.token_ids) for _, c, _ in rows), reward_mean=float(r.mean()),
                       reward_std=float(r.std()) if r.numel() > 1 else 0.0)
    return pack_rows(bundle, rows, algorithm, accumulation=accumulation), stats


def pack_rows(bundle, rows: list[tuple], algorithm, *, accumulation: int) -> list[dict[str, torch.Tensor]]:
    """(prompt, `Completion`, advantage) rows → exactly `accumulation` micro-batches (none for no rows), each with
    the step's one `loss_denominator` so that accumulation gives the full-batch loss (tracer1.learner.grpo), and
    the engine's log-probs of the sampled tokens as `behaviour_logprobs`, aligned like the learner's."""
    if not rows:
        return []
    tokens = sum(len(c.token_ids) for _, c, _ in rows)
    parts = [rows[s] for s in split_evenly(len(rows), min(accumulation, len(rows)))]
    count = tokens if algorithm.loss_agg == "token-mean" else len(rows)
    micro_batches = []
    for part in parts:
        batch = encode_for_training(bundle, [p for p, _, _ in part], [c.token_ids for _, c, _ in part])
        batch["advantages"] = torch.tensor([a for _, _, a in part], dtype=torch.float32)
        batch["behaviour_logprobs"] = behaviour_logprobs(batch["completion_mask"], [c for _, c, _ in part])
        batch["loss_denominator"] = torch.tensor(count / accumulation, dtype=torch.float32)
        micro_batches.append(batch)
    while len(micro_batches) < accumulation:  # fewer plans than micro-batches: pad with a batch that adds 0
        empty = dict(micro_batches[-1])
        empty["completion_mask"] = torch.zeros_like(empty["completion_mask"])
        micro_batches.append(empty)
    return micro_batches


def behaviour_logprobs(completion_mask: torch.Tensor, completions: Sequence) -> torch.Tensor:
    """(B, L) float32: each completion's engine log-probs on its row's completion columns, 0 elsewhere (a
    completion without one log-prob per token is refused, naming the row)."""
    out = torch.zeros(completion_mask.shape, dtype=torch.float32)
    for row, c in enumerate(completions):
        columns = completion_mask[row].nonzero().flatten()
        if len(c.logprobs) != len(columns):
            raise ValueError(f"row {row}: the engine returned {len(c.logprobs)} log-probs for {len(columns)} "
                             "sampled tokens")
        out[row, columns] = torch.tensor(c.logprobs, dtype=torch.float32)
    return out
