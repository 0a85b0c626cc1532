"""GRPO: group-normalised advantages and the clipped token-level policy loss with a KL term. Plain torch.

One prompt yields a group of G plans; each plan's advantage is its reward against its group's:

    A_i = (r_i − mean(r)) / (std(r) + eps)        (`scale_by_std=False`: r_i − mean(r), Dr. GRPO)

with the unbiased std, as TRL's and verl's GRPO use. A group whose rewards are all equal has A = 0 everywhere and
teaches nothing; `group_advantages` marks it so the loop can drop it (`algorithm.filter_flat_groups`).

Every completion token t of plan i gets A_i and the PPO-style clipped surrogate with separate clips (DAPO's
clip-higher: `clip_high > clip_low` leaves more room to raise unlikely tokens than to lower likely ones):

    ρ_t = π_θ(y_t) / π_old(y_t)
    ℓ_t = max(−A_i ρ_t, −A_i clip(ρ_t, 1 − clip_low, 1 + clip_high)) + β · KL_t − c_H · H_t

The clips act only when `algorithm.epochs_per_batch` > 1: in the first pass over fresh rollouts π_old = π_θ,
so ρ = 1 and nothing is clipped; clip-higher shapes the later epochs over the same batch.

Batches generated ahead by older weights (`algorithm.max_staleness` = k > 0) are off-policy: the policy μ that
sampled them is up to k updates behind π_old, the policy at this update's start. The rollout engine returns μ's
own per-token log-probs (``behaviour_logprobs``), and each token's loss is weighted by the truncated importance
weight of π_old against μ (TIS; the decoupled objective of AReaL):

    w_t = min(π_old(y_t) / μ(y_t), C)          (no gradient; C = `tis_cap`, 0 = no weight)
    ℓ_t ← w_t · ℓ_t

which is the on-policy gradient in expectation up to the truncation; C bounds the variance a token that μ found
unlikely would add. With `old_logprobs="rollout"` π_old is μ itself (its log-probs are the ratio's denominator,
no weight): the clip then bounds the step from the behaviour policy, and several epochs need no extra forward.
The mean gap |log π_θ − log μ| over the completion tokens is reported (`behaviour_gap`): at staleness 0 it is
the engine's numerics against the learner's on the same weights, with staleness k also k updates of drift.

KL_t is the per-token estimator of KL(π_θ ‖ π_ref) on the sampled token (δ = log π_ref − log π_θ):
k1 = −δ, k2 = δ²/2, k3 = e^δ − δ − 1 (unbiased, always ≥ 0, GRPO's choice). H_t is the policy's entropy at
t.

Aggregation over tokens (`loss_agg`), with m the completion mask:

* ``token-mean``         Σ_i Σ_t ℓ m / Σ_i Σ_t m — every token weighs the same (DAPO; long plans weigh more);
* ``seq-mean-token-mean`` mean_i (Σ_t ℓ m / Σ_t m) — every plan weighs the same (the original GRPO);
* ``seq-mean-token-sum``  mean_i Σ_t ℓ m — sums over a plan's tokens (Dr. GRPO, without its constant).

The denominators are per micro-batch unless the batch carries ``loss_denominator`` (tokens for token-mean,
plans otherwise, counted over the whole optimizer step and divided by the number of micro-batches), which makes
gradient accumulation give exactly the full-batch loss.

Batches are those of `tracer1.models.inputs.encode_for_training` plus ``advantages`` (B,), and optionally
``old_logprobs`` / ``ref_logprobs`` / ``behaviour_logprobs`` (B, L) aligned with ``input_ids``
(`sequence_logprobs`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from tracer1.models.inputs import sequence_logprobs

LOSS_AGGREGATIONS = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean")
KL_ESTIMATORS = ("k1", "k2", "k3")


def group_advantages(rewards: torch.Tensor | Sequence[Sequence[float]], *, scale_by_std: bool = True,
                     eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards (P prompts, G plans) → (advantages (P, G), informative (P,) bool: the group's rewards differ)."""
    r = torch.as_tensor(rewards, dtype=torch.float64)
    if r.dim() != 2 or r.shape[1] < 2:
        raise ValueError(f"rewards must be (prompts, group_size ≥ 2), got shape {tuple(r.shape)}")
    if not torch.isfinite(r).all():
        raise ValueError("rewards must be finite (a failed item scores the reward's failure value, not NaN)")
    centred = r - r.mean(dim=1, keepdim=True)
    spread = r.max(dim=1).values - r.min(dim=1).values
    informative = spread > 1e-12
    if scale_by_std:
        centred = centred / (r.std(dim=1, keepdim=True) + eps)
    centred[~informative] = 0.0  # exact zeros, not rounding noise divided by eps
    return centred.float(), informative


def kl_per_token(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    """Per-token estimate of KL(π_θ ‖ π_ref) from the sampled tokens' log-probs (see the module docstring)."""
    delta = ref_logprobs - logprobs
    if estimator == "k1":
        return -delta
    if estimator == "k2":
        return 0.5 * delta.square()
    if estimator == "k3":
        return torch.expm1(delta.clamp(max=20.0)) - delta  # e^δ − 1 − δ, clamped so a stray token cannot overflow
    raise ValueError(f"unknown KL estimator {estimator!r}; choose one of {', '.join(KL_ESTIMATORS)}")


def _divide(total: torch.Tensor, count: float | torch.Tensor) -> torch.Tensor:
    """total / count, and 0 for count 0 (nothing to average). A count below 1 is real — a step's plans shared by
    more micro-batches — and is not floored: that would shrink the loss."""
    count = torch.as_tensor(count, dtype=total.dtype, device=total.device)
    return total / torch.where(count > 0, count, torch.ones_like(count))


def aggregate(values: torch.Tensor, mask: torch.Tensor, mode: str = "token-mean",
              denominator: float | torch.Tensor | None = None) -> torch.Tensor:
    """Reduce per-token `values` (B, L) over `mask` by `mode` (see the module docstring)."""
    mask = mask.to(values.dtype)
    if mode == "token-mean":
        return _divide((values * mask).sum(), mask.sum() if denominator is None else denominator)
    per_plan = (values * mask).sum(dim=1)
    if mode == "seq-mean-token-mean":
        per_plan = per_plan / mask.sum(dim=1).clamp(min=1.0)
    elif mode != "seq-mean-token-sum":
        raise ValueError(f"unknown loss aggregation {mode!r}; choose one of {', '.join(LOSS_AGGREGATIONS)}")
    return _divide(per_plan.sum(), (mask.sum(dim=1) > 0).sum() if denominator is None else denominator)


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the next-token distribution that produced each token (B, L), aligned like `sequence_logprobs`."""
    logp = logits[:, :-1].float().log_softmax(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return torch.cat([entropy.new_zeros(logits.shape[0], 1), entropy], dim=1)


def grpo_loss(logits: torch.Tensor, batch: Mapping[str, torch.Tensor], *, clip_low: float = 0.2,
              clip_high: float = 0.28, kl_coef: float = 0.0, kl_estimator: str = "k3", entropy_coef: float = 0.0,
              loss_agg: str = "token-mean", temperature: float = 1.0, logprob_chunk_tokens: int = 0,
              tis_cap: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """The GRPO objective for one micro-batch → (loss, metrics). Without ``old_logprobs`` the batch is taken as
    on-policy (ρ = 1, the first pass over fresh rollouts); ``ref_logprobs`` is needed when `kl_coef` > 0.
    The logits are divided by `temperature`: the batch's ``old_logprobs`` and ``ref_logprobs`` must be taken at
    the same one (`LearnerWorker` does). `logprob_chunk_tokens` > 0 computes the log-probs that many positions
    at a time (`sequence_logprobs`): the same loss and gradients without float32 copies of the whole logits.
    `tis_cap` > 0 weights each token by min(π_old / μ, tis_cap) where the batch has ``behaviour_logprobs``."""
    if temperature != 1.0:
        logits = logits / temperature  # the policy that sampled the plans is softmax(logits / T)
    mask = batch["completion_mask"].float()
    logp = sequence_logprobs(logits, batch["input_ids"], logprob_chunk_tokens)
    old = batch.get("old_logprobs")
    old = logp.detach() if old is None else old.to(logp)
    advantages = batch["advantages"].to(logp).unsqueeze(1)
    ratio = torch.exp((logp - old).clamp(-20.0, 20.0))
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    per_token = torch.maximum(unclipped, clipped)
    behaviour = batch.get("behaviour_logprobs")
    if behaviour is not None:
        behaviour = behaviour.to(logp)
        if tis_cap > 0:
            weight = torch.exp((old - behaviour).clamp(-20.0, 20.0)).clamp(max=tis_cap)
            per_token = per_token * weight
    denominator = batch.get("loss_denominator")
    policy = aggregate(per_token, mask, loss_agg, denominator)
    loss = policy
    metrics: dict[str, float] = {"policy_loss": policy.item()}
    if kl_coef > 0:
        if "ref_logprobs" not in batch:
            raise ValueError("kl_coef > 0 needs ref_logprobs in the batch (the reference policy's log-probs)")
        kl = aggregate(kl_per_token(logp, batch["ref_logprobs"].to(logp), kl_estimator), mask, loss_agg,
                       denominator)
        loss = loss + kl_coef * kl
        metrics["kl"] = kl.item()
    if entropy_coef > 0:
        entropy = aggregate(token_entropy(logits), mask, loss_agg, denominator)
        loss = loss - entropy_coef * entropy
        metrics["entropy"] = entropy.item()
    with torch.no_grad():
        was_clipped = (clipped > unclipped).float()  # the clip bound, not the ratio, set this token's loss
        metrics.update({
            "loss": loss.item(),
            "clip_fraction": (was_clipped * mask).sum().item() / max(mask.sum().item(), 1.0),
            "ratio_max": (ratio * mask).max().item() if mask.any() else 1.0,
            "approx_kl_old": aggregate(kl_per_token(logp, old, "k3"), mask).item(),
            "tokens": mask.sum().item(),
        })
        if behaviour is not None:
            metrics["behaviour_gap"] = aggregate((logp - behaviour).abs(), mask).item()
            if tis_cap > 0:
                raw = torch.exp((old - behaviour).clamp(-20.0, 20.0))
                metrics["tis_weight_mean"] = aggregate(weight, mask).item()
                metrics["tis_truncated"] = aggregate((raw > tis_cap).float(), mask).item()
    return loss, metrics


def grpo_objective(algorithm, temperature: float = 1.0):
    """`grpo_loss` bound to an `AlgorithmConfig` (what `Learner.step` takes as its objective). The importance weight
    acts on batches generated ahead (`max_staleness` > 0) when π_old is the learner's own (`old_logprobs`)."""
    tis_cap = algorithm.tis_cap if algorithm.max_staleness > 0 and algorithm.old_logprobs == "learner" else 0.0

    def objective(logits: torch.Tensor, batch: Mapping[str, torch.Tensor]):
        return grpo_loss(logits, batch, clip_low=algorithm.clip_low, clip_high=algorithm.clip_high,
                         kl_coef=algorithm.kl_coef, kl_estimator=algorithm.kl_estimator,
                         entropy_coef=algorithm.entropy_coef, loss_agg=algorithm.loss_agg, temperature=temperature,
                         logprob_chunk_tokens=algorithm.logprob_chunk_tokens, tis_cap=tis_cap)

    return objective
