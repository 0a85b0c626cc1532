"""From groups of sampled plans and their rewards to learner micro-batches: advantages per group, flat groups
dropped, sampled ids and the rollout's encoded prompts kept exactly, one loss denominator per step."""

from __future__ import annotations

import pytest
import torch
from tiny_planners import one_thread, samples, tiny_dirs  # noqa: F401  (fixtures)

from tracer1.config import AlgorithmConfig, RunConfig
from tracer1.learner.grpo import group_advantages
from tracer1.rollout import RolloutWorker
from tracer1.train.batch import split_evenly, training_batches

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
