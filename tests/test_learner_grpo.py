"""GRPO, by hand: advantages of small groups, the clipped surrogate at chosen ratios, the KL estimators and the
three loss aggregations, each against a value worked out on paper; then a few plain-torch steps on the tiny
planner show the loss moves probability towards the better plan of a group."""

from __future__ import annotations

import math

import pytest
import torch

from tracer1.config import AlgorithmConfig
from tracer1.engines.base import Prompt
from tracer1.learner.grpo import aggregate, grpo_loss, grpo_objective, group_advantages, kl_per_token
from tracer1.models.inputs import completion_logprobs, encode_for_training, model_inputs, tokenize_target
from tracer1.models.loading import load_planner
from tracer1.models.tiny import build_tiny_planner


def test_advantages_are_rewards_against_the_group_in_units_of_its_std():
    adv, informative = group_advantages([[1.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5]])
    # group 1: mean 0.5, unbiased std sqrt((4 × 0.25) / 3) = 0.57735 → ±0.5 / 0.57735 = ±0.8660
    assert adv[0].tolist() == pytest.approx([0.8660, -0.8660, -0.8660, 0.8660], abs=1e-4)
    # group 2 has no spread: no signal, exact zeros, marked for filtering
    assert adv[1].tolist() == [0.0, 0.0, 0.0, 0.0] and informative.tolist() == [True, False]


def test_dr_grpo_advantages_are_only_centred():
    adv, _ = group_advantages([[2.0, 0.0, 1.0]], scale_by_std=False)
    assert adv[0].tolist() == pytest.approx([1.0, -1.0, 0.0])


def test_bad_rewards_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="group_size ≥ 2"):
        group_advantages([[1.0], [0.0]])
    with pytest.raises(ValueError, match="finite"):
        group_advantages([[1.0, float("nan")]])


def test_kl_estimators_on_one_token():
    logp, ref = torch.tensor([-1.0]), torch.tensor([-2.0])  # δ = ref − logp = −1
    assert kl_per_token(logp, ref, "k1").item() == pytest.approx(1.0)
    assert kl_per_token(logp, ref, "k2").item() == pytest.approx(0.5)
    assert kl_per_token(logp, ref, "k3").item() == pytest.approx(math.exp(-1) + 1 - 1)  # e^δ − δ − 1 = 0.3679
    assert kl_per_token(ref, ref, "k3").item() == 0.0
    with pytest.raises(ValueError, match="k3"):
        kl_per_token(logp, ref, "k4")


def test_the_three_aggregations():
    values = torch.tensor([[2.0, 0.0, 0.0], [1.0, 3.0, 5.0]])
    mask = torch.tensor([[1, 0, 0], [1, 1, 1]])
    assert aggregate(values, mask, "token-mean").item() == pytest.approx((2 + 1 + 3 + 5) / 4)      # 2.75
    assert aggregate(values, mask, "seq-mean-token-mean").item() == pytest.approx((2 / 1 + 9 / 3) / 2)  # 2.5
    assert aggregate(values, mask, "seq-mean-token-sum").item() == pytest.approx((2 + 9) / 2)  # 5.5
    assert aggregate(values, mask, "token-mean", denominator=8).item() == pytest.approx(11 / 8)
    with pytest.raises(ValueError, match="token-mean"):
        aggregate(values, mask, "mean")


def test_loss_denominator_makes_accumulated_micro_batches_equal_the_full_batch():
    torch.manual_seed(0)
    values, mask = torch.randn(4, 5), (torch.rand(4, 5) > 0.4).int()
    for mode, count in (("token-mean", mask.sum()), ("seq-mean-token-sum", 4)):
        full = aggregate(values, mask, mode)
        # DeepSpeed divides each micro-batch's loss by the accumulation steps (2) before adding the gradients
        halves = [aggregate(values[i:i + 2], mask[i:i + 2], mode, denominator=count / 2) / 2 for i in (0, 2)]
        assert sum(halves).item() == pytest.approx(full.item())


def test_a_loss_denominator_below_1_is_not_floored():
    """2 plans over 4 micro-batches (few groups left after filtering): each micro-batch's plan denominator is
    2 / 4 = 0.5, and the accumulated loss must still be the full batch's."""
    torch.manual_seed(1)
    values, mask = torch.randn(2, 5), torch.ones(2, 5, dtype=torch.int)
    for mode in ("seq-mean-token-mean", "seq-mean-token-sum"):
        full = aggregate(values, mask, mode)
        parts = [(values[i:i + 1], mask[i:i + 1]) for i in (0, 1)] + [(values[:1], torch.zeros_like(mask[:1]))] * 2
        accumulated = sum(aggregate(v, m, mode, denominator=2 / 4) / 4 for v, m in parts)
        assert accumulated.item() == pytest.approx(full.item())
    assert aggregate(values, torch.zeros_like(mask), "token-mean", denominator=0.0).item() == 0.0  # no NaN


def one_token_batch(logp_new: float, logp_old: float, advantage: float):
    """Logits over a 2-token vocabulary whose log-prob of token 1 is `logp_new` at position 1."""
    p = math.exp(logp_new)
    logit = torch.tensor([math.log(1 - p), math.log(p)], requires_grad=True)
    logits = torch.stack([logit, torch.zeros(2)]).unsqueeze(0)  # (1, 2, 2); position 0's logits predict token 1
    batch = {"input_ids": torch.tensor([[0, 1]]), "completion_mask": torch.tensor([[0, 1]]),
             "old_logprobs": torch.tensor([[0.0, logp_old]]), "advantages": torch.tensor([advantage])}
    return logit, logits, batch


@pytest.mark.parametrize("ratio, advantage, loss, moves", [
    (1.1, 1.0, -1.1, True),     # inside the clip range: −A·ρ, with a gradient
    (1.5, 1.0, -1.28, False),   # above 1 + clip_high: −A·1.28, flat — no push further up
    (0.5, -1.0, 0.8, False),    # below 1 − clip_low with A < 0: A·0.8, flat — no push further down
    (1.5, -1.0, 1.5, True),     # A < 0 and ρ large: the unclipped term is worse, it keeps its gradient
])
def test_the_clipped_surrogate_at_chosen_ratios(ratio, advantage, loss, moves):
    old = math.log(0.4)
    logit, logits, batch = one_token_batch(old + math.log(ratio), old, advantage)
    value, metrics = grpo_loss(logits, batch, clip_low=0.2, clip_high=0.28)
    assert value.item() == pytest.approx(loss, abs=1e-5)
    value.backward()
    assert (logit.grad.abs().sum().item() > 1e-6) == moves
    assert metrics["clip_fraction"] == (0.0 if moves else 1.0)


def test_kl_term_needs_the_reference_and_adds_its_weighted_value():
    _, logits, batch = one_token_batch(math.log(0.4), math.log(0.4), 0.0)
    with pytest.raises(ValueError, match="ref_logprobs"):
        grpo_loss(logits, batch, kl_coef=0.1)
    batch["ref_logprobs"] = torch.tensor([[0.0, math.log(0.4) - 1.0]])  # δ = −1 → k3 = 0.3679
    value, metrics = grpo_loss(logits, batch, kl_coef=0.1)
    assert metrics["kl"] == pytest.approx(math.exp(-1), abs=1e-5)
    assert value.item() == pytest.approx(0.1 * math.exp(-1), abs=1e-5)  # A = 0: only the KL term is left


@pytest.mark.parametrize("behaviour_p, weight, truncated", [
    (0.5, 0.8, 0.0),   # μ = 0.5, π_old = 0.4: w = 0.4 / 0.5
    (0.1, 2.0, 1.0),   # π_old / μ = 4, truncated at C = 2
])
def test_a_token_sampled_by_older_weights_is_weighted_by_the_truncated_importance_ratio(behaviour_p, weight,
                                                                                       truncated):
    """Two tokens of one plan: token 1 sampled by the behaviour policy μ, ρ = π_θ / π_old = 1.1 (inside the clip),
    A = 1, so the unweighted loss is −1.1 a token; a second token with μ = π_old has weight 1."""
    old, new = math.log(0.4), math.log(0.44)
    logit = torch.tensor([math.log(0.56), new], requires_grad=True)
    logits = torch.stack([logit, logit, torch.zeros(2)]).unsqueeze(0)  # positions 0 and 1 predict tokens 1, 2
    batch = {"input_ids": torch.tensor([[0, 1, 1]]), "completion_mask": torch.tensor([[0, 1, 1]]),
             "old_logprobs": torch.tensor([[0.0, old, old]]), "advantages": torch.tensor([1.0]),
             "behaviour_logprobs": torch.tensor([[0.0, math.log(behaviour_p), old]])}
    value, metrics = grpo_loss(logits, batch, tis_cap=2.0)
    assert value.item() == pytest.approx(-1.1 * (weight + 1.0) / 2, abs=1e-5)
    assert metrics["tis_weight_mean"] == pytest.approx((weight + 1.0) / 2, abs=1e-6)
    assert metrics["tis_truncated"] == pytest.approx(truncated / 2)
    assert metrics["behaviour_gap"] == pytest.approx((abs(new - math.log(behaviour_p)) + abs(new - old)) / 2,
                                                     abs=1e-6)
    unweighted, plain = grpo_loss(logits, batch, tis_cap=0.0)  # no correction: the gap is still reported
    assert unweighted.item() == pytest.approx(-1.1, abs=1e-5) and "tis_weight_mean" not in plain
    assert plain["behaviour_gap"] == metrics["behaviour_gap"]


def test_the_importance_weight_acts_on_batches_generated_ahead_with_the_learners_own_old_policy():
    def cap(**fields):
        _, logits, batch = one_token_batch(math.log(0.44), math.log(0.4), 1.0)
        batch["behaviour_logprobs"] = torch.tensor([[0.0, math.log(0.1)]])  # π_old / μ = 4: truncated at 2
        return grpo_objective(AlgorithmConfig(kl_coef=0, **fields))(logits, batch)[0].item()

    assert cap(max_staleness=1) == pytest.approx(-1.1 * 2.0, abs=1e-5)
    assert cap(max_staleness=0) == pytest.approx(-1.1, abs=1e-5)  # synchronous: on-policy, no weight
    assert cap(max_staleness=1, tis_cap=0) == pytest.approx(-1.1, abs=1e-5)
    assert cap(max_staleness=1, old_logprobs="rollout") == pytest.approx(-1.1, abs=1e-5)  # the loop sets π_old = μ


def test_grpo_steps_move_the_tiny_planner_towards_the_better_plan(tmp_path):
    torch.manual_seed(0)
    bundle = load_planner(build_tiny_planner(tmp_path / "tiny", kind="text", seed=0))
    good, bad = '<plan>\n1. click(target="Wi-Fi")\n</plan>', '<plan>\n1. press(key="home")\n</plan>'
    prompt = Prompt(text="Task: turn on Wi-Fi.")
    batch = encode_for_training(bundle, [prompt, prompt], [tokenize_target(bundle, good),
                                                           tokenize_target(bundle, bad)])
    adv, _ = group_advantages([[1.0, 0.0]])
    batch["advantages"] = adv[0]
    batch["loss_denominator"] = torch.tensor(float(batch["completion_mask"].sum()))  # the whole step's tokens
    assert set(model_inputs(batch)) == {"input_ids", "attention_mask"}  # only what forward() takes
    model = bundle.model.train()
    with torch.no_grad():
        before = (completion_logprobs(model, batch) * batch["completion_mask"]).sum(1)
        batch["ref_logprobs"] = completion_logprobs(model, batch)
    objective = grpo_objective(AlgorithmConfig(kl_coef=0.01))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(5):
        loss, metrics = objective(model(**model_inputs(batch)).logits, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = (completion_logprobs(model, batch) * batch["completion_mask"]).sum(1)
    assert after[0] > before[0] and after[1] < before[1]  # the better plan gained, the worse one lost
    assert metrics["kl"] > 0
