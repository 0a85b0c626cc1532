"""From groups of sampled plans and their rewards to learner micro-batches: advantages per group, flat groups
dropped, sampled ids and the rollout's encoded prompts kept exactly, one loss denominator per step."""

from __future__ import annotations

import pytest
import torch
from tiny_planners import one_thread, samples, tiny_dirs  # noqa: F401  (fixtures)

from tracer1.config import AlgorithmConfig, RunConfig
from tracer1.learner.grpo import group_advantages
from tracer1.rollout import Group, RolloutWorker
from tracer1.train.batch import episode_batches, split_evenly, training_batches

CONFIG = RunConfig.model_validate({"rollout": {"group_size": 3, "max_new_tokens": 10}, "horizon": 5})


def test_split_evenly():
    assert [s.stop - s.start for s in split_evenly(7, 3)] == [3, 2, 2]
    assert [s.stop - s.start for s in split_evenly(2, 4)] == [1, 1, 0, 0]
    assert [s.start for s in split_evenly(7, 3)] == [0, 3, 5]


@pytest.fixture(scope="module")
def rollout(tiny_dirs, samples):
    worker = RolloutWorker(tiny_dirs["text"], CONFIG)
    batch = samples[:2]
    return worker, worker.rollout(batch, seed=1)


def completion_ids(batch, row):
    return batch["input_ids"][row][batch["completion_mask"][row].bool()].tolist()


def test_flat_groups_are_dropped_and_the_rest_split_into_micro_batches(rollout):
    worker, groups = rollout
    rewards = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5]]
    micro, stats = training_batches(worker.bundle, groups, rewards, AlgorithmConfig(), accumulation=2)
    assert (stats.groups, stats.kept_groups, stats.plans) == (2, 1, 3)
    assert [len(m["advantages"]) for m in micro] == [2, 1]
    expected, _ = group_advantages([rewards[0]])
    assert torch.cat([m["advantages"] for m in micro]).tolist() == pytest.approx(expected[0].tolist())
    rows = [(m, r) for m in micro for r in range(len(m["advantages"]))]
    assert [completion_ids(m, r) for m, r in rows] == [c.token_ids for c in groups[0].completions]
    tokens = sum(len(c.token_ids) for c in groups[0].completions)
    assert stats.tokens == tokens and all(m["loss_denominator"].item() == tokens / 2 for m in micro)


def test_the_engines_log_probs_come_along_aligned_with_the_learners(rollout):
    """`behaviour_logprobs` sit on the sampled tokens' columns, where `token_logprobs` puts the learner's: with
    the weights that sampled them they agree (the HF engine computes the same forward)."""
    from tracer1.models.inputs import token_logprobs  # noqa: PLC0415

    worker, groups = rollout
    micro, _ = training_batches(worker.bundle, groups, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.5]], AlgorithmConfig(),
                                accumulation=2)
    engine_rows = [c.logprobs for g in groups for c in g.completions]
    rows = [(m, r) for m in micro for r in range(len(m["advantages"]))]
    packed = [m["behaviour_logprobs"][r][m["completion_mask"][r].bool()].tolist() for m, r in rows]
    assert [len(row) for row in packed] == [len(row) for row in engine_rows]
    assert sum(packed, []) == pytest.approx(sum(engine_rows, []), abs=1e-6)
    assert all((m["behaviour_logprobs"][m["completion_mask"] == 0] == 0).all() for m in micro)
    learner = [token_logprobs(worker.bundle.model, m) for m in micro]
    for m, logp in zip(micro, learner):
        mask = m["completion_mask"].bool()
        assert (logp[mask] - m["behaviour_logprobs"][mask]).abs().max().item() < 1e-4


def test_a_completion_without_its_log_probs_is_refused_naming_the_row(rollout):
    worker, groups = rollout
    broken = [Group(g.sample_id, g.prompt, [c.__class__(**{**c.__dict__, "logprobs": c.logprobs[:-1]})
                                            for c in g.completions]) for g in groups]
    with pytest.raises(ValueError, match=r"row 0: the engine returned \d+ log-probs for \d+ sampled tokens"):
        training_batches(worker.bundle, broken, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.5]], AlgorithmConfig(),
                         accumulation=1)


def test_without_filtering_every_plan_trains_and_sequence_aggregation_counts_plans(rollout):
    worker, groups = rollout
    algorithm = AlgorithmConfig(filter_flat_groups=False, loss_agg="seq-mean-token-mean")
    micro, stats = training_batches(worker.bundle, groups, [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5]],
                                    algorithm, accumulation=4)
    assert stats.plans == 6 and [len(m["advantages"]) for m in micro] == [2, 2, 1, 1]
    assert all(m["loss_denominator"].item() == 6 / 4 for m in micro)
    assert torch.cat([m["advantages"] for m in micro])[3:].tolist() == [0.0, 0.0, 0.0]


def test_more_micro_batches_than_plans_are_padded_with_batches_that_add_nothing(rollout):
    worker, groups = rollout
    micro, _ = training_batches(worker.bundle, groups[:1], [[1.0, 0.0, 0.0]], AlgorithmConfig(),
                                accumulation=5)
    assert len(micro) == 5 and [int(m["completion_mask"].sum() > 0) for m in micro] == [1, 1, 1, 0, 0]


def test_all_flat_gives_no_step_and_mismatched_rewards_are_refused(rollout):
    worker, groups = rollout
    micro, stats = training_batches(worker.bundle, groups, [[0.0] * 3, [1.0] * 3], AlgorithmConfig(),
                                    accumulation=2)
    assert micro == [] and stats.kept_groups == 0
    with pytest.raises(ValueError, match="one row per group, one reward per plan"):
        training_batches(worker.bundle, groups, [[1.0, 0.0, 0.0]], AlgorithmConfig(), accumulation=1)
    with pytest.raises(ValueError, match="one row per group, one reward per plan"):
        training_batches(worker.bundle, groups, [[1.0, 0.0], [0.0, 1.0]], AlgorithmConfig(), accumulation=1)


# --- stage 3: episodes ----------------------------------------------------------------------------------------

def episode(groups, success, decisions):
    """A played episode whose decisions are `decisions` of the rollout's groups (one sampled plan each)."""
    from tracer1.train.episodes import PlayedEpisode

    picked = [Group(g.sample_id, g.prompt, [g.completions[0]]) for g in groups[:1] * decisions]
    return PlayedEpisode(spec=None, result={"success": success}, decisions=picked)


def test_each_episode_weighs_the_same_whatever_its_number_of_decisions(rollout):
    """A hand-built group: a success in 2 decisions and a failure in 6. Each episode's advantage is ±1/√2 (GRPO
    with the unbiased std); with episode weighting every decision gets A_e · D̄ / n_e (D̄ = 4), so both episodes
    carry the same total weight (±2.83), where decision weighting lets the failure's 6 decisions outweigh the
    success's 2 three times over."""
    worker, groups = rollout
    group = [episode(groups, True, 2), episode(groups, False, 6)]
    micro, stats = episode_batches(worker.bundle, [group], [[1.0, 0.0]], AlgorithmConfig(), weighting="episode",
                                   accumulation=1)
    a = torch.cat([m["advantages"] for m in micro]).tolist()
    half = 2 ** -0.5
    assert a == pytest.approx([half * 2] * 2 + [-half * 4 / 6] * 6, rel=1e-4)
    assert sum(a[:2]) == pytest.approx(-sum(a[2:]), rel=1e-4) and stats.plans == 8
    micro, _ = episode_batches(worker.bundle, [group], [[1.0, 0.0]], AlgorithmConfig(), weighting="decision",
                               accumulation=1)
    a = torch.cat([m["advantages"] for m in micro]).tolist()
    assert a == pytest.approx([half] * 2 + [-half] * 6, rel=1e-4) and -sum(a[2:]) == pytest.approx(3 * sum(a[:2]))


def test_episodes_are_normalised_within_their_own_task_group_only(rollout):
    """Two groups of different tasks, listed together: each group's returns are centred on its own mean, never
    mixed with the other's (the pitfall of reshaping a flat list of decisions into groups by position)."""
    worker, groups = rollout
    easy = [episode(groups, True, 1), episode(groups, True, 1), episode(groups, False, 3)]
    hard = [episode(groups, False, 5), episode(groups, True, 2)]
    micro, stats = episode_batches(worker.bundle, [easy, hard], [[1.0, 1.0, 0.0], [0.0, 1.0]], AlgorithmConfig(),
                                   weighting="decision", accumulation=2)
    a = torch.cat([m["advantages"] for m in micro]).tolist()
    first, _ = group_advantages([[1.0, 1.0, 0.0]])
    second, _ = group_advantages([[0.0, 1.0]])
    expected = [first[0, 0]] + [first[0, 1]] + [first[0, 2]] * 3 + [second[0, 0]] * 5 + [second[0, 1]] * 2
    assert a == pytest.approx([float(x) for x in expected], rel=1e-5) and stats.kept_groups == 2


def test_episode_groups_without_spread_or_at_all_give_no_batch(rollout):
    worker, groups = rollout
    flat = [episode(groups, False, 2), episode(groups, False, 4)]
    micro, stats = episode_batches(worker.bundle, [flat], [[0.0, 0.0]], AlgorithmConfig(), weighting="episode",
                                   accumulation=2)
    assert micro == [] and stats.kept_groups == 0
    assert episode_batches(worker.bundle, [], [], AlgorithmConfig(), weighting="episode", accumulation=2)[0] == []
    with pytest.raises(ValueError, match="one return per episode"):
        episode_batches(worker.bundle, [flat], [[0.0]], AlgorithmConfig(), weighting="episode", accumulation=1)
