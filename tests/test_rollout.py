"""RolloutWorker on the tiny planners with the transformers engine: G plans per sample in order, the prompt ids
the learner will see, reproducible seeds, weight updates; the prompt side loaded without weights when the
engine holds the model elsewhere (as vLLM does); and a worker drawing its own samples from its Parquet shards at
the position the loop names (`data.train_shards`)."""

from __future__ import annotations

import pytest
from tiny_planners import one_thread, samples, tiny_dirs  # noqa: F401  (fixtures)

from tracer1.config import RunConfig
from tracer1.data.shards import list_shards, write_shards
from tracer1.engines import HFEngine
from tracer1.models.inputs import encode_prompt
from tracer1.models.prompt import prompts_for_run
from tracer1.rollout import RolloutWorker, WorkerShard

CONFIG = RunConfig.model_validate({"rollout": {"group_size": 3, "max_new_tokens": 12}, "horizon": 5})


class EngineWithoutPlanner:
    """The HF engine behind an object that, like VLLMEngine, exposes no PlannerBundle."""

    def __init__(self, inner):
        self.inner = inner

    def generate(self, prompts, sampling):
        return self.inner.generate(prompts, sampling)


def test_groups_hold_g_plans_per_sample_with_the_learners_prompt_ids(tiny_dirs, samples):
    worker = RolloutWorker(tiny_dirs["vl"], CONFIG)
    batch = samples[:3]
    groups = worker.rollout(batch, seed=7)
    assert [g.sample_id for g in groups] == [s.sample_id for s in batch]
    assert all(len(g.completions) == 3 and len(g.texts) == 3 for g in groups)
    for group, prompt in zip(groups, prompts_for_run(worker.bundle, batch, CONFIG)):
        expected = encode_prompt(worker.bundle, prompt)
        assert group.prompt_token_ids == list(expected.input_ids)
        assert group.prompt.pixel_values.equal(expected.pixel_values)  # the patches the learner trains on
        assert all(1 <= len(c.token_ids) <= 12 and len(c.logprobs) == len(c.token_ids) for c in group.completions)
    again = worker.rollout(batch, seed=7)
    assert [g.texts for g in again] == [g.texts for g in groups]  # the step's seed fixes the plans
    assert [len(g.completions) for g in worker.rollout(batch, greedy=True)] == [1, 1, 1]
    assert worker.rollout([]) == []


class DriftingEngine(EngineWithoutPlanner):
    """An engine that tokenises prompts itself, and differently (one id dropped)."""

    def generate(self, prompts, sampling):
        groups = self.inner.generate(prompts, sampling)
        for group in groups:
            for c in group:
                c.prompt_token_ids = c.prompt_token_ids[1:]
        return groups


def test_an_engine_whose_prompt_ids_drift_from_the_learners_is_refused_by_sample(tiny_dirs, samples):
    worker = RolloutWorker(tiny_dirs["text"], CONFIG, engine=DriftingEngine(HFEngine(tiny_dirs["text"])))
    with pytest.raises(ValueError, match=f"sample {samples[0].sample_id}: the engine's prompt ids differ") as e:
        worker.rollout(samples[:2], seed=1)
    assert "prompt ids differ at position 0" in str(e.value)  # the report of tracer1.engines.prompt_ids


def test_update_weights_changes_the_plans_and_counts_versions(tiny_dirs, samples):
    worker = RolloutWorker(tiny_dirs["text"], CONFIG)
    before = worker.rollout(samples[:2], greedy=True)
    other = RolloutWorker(tiny_dirs["text-seed1"], CONFIG).engine.model.state_dict()
    assert worker.update_weights(other) == 1 and worker.update_weights(other, version=5) == 5
    after = worker.rollout(samples[:2], greedy=True)
    assert [g.texts for g in after] != [g.texts for g in before]


def test_without_a_planner_in_the_engine_the_prompt_side_loads_without_weights(tiny_dirs, samples):
    hf = HFEngine(tiny_dirs["vl"])
    worker = RolloutWorker(tiny_dirs["vl"], CONFIG, engine=EngineWithoutPlanner(hf))
    assert worker.bundle.model is None and worker.bundle.is_vision
    assert worker.bundle.banned_token_ids == hf.bundle.banned_token_ids
    assert worker.bundle.eos_token_ids == hf.bundle.eos_token_ids
    ours = prompts_for_run(worker.bundle, samples[:2], CONFIG)
    theirs = prompts_for_run(RolloutWorker(tiny_dirs["vl"], CONFIG, engine=hf).bundle, samples[:2], CONFIG)
    assert [p.text for p in ours] == [p.text for p in theirs]
    assert [[im.tobytes() for im in p.images] for p in ours] == [[im.tobytes() for im in p.images] for p in theirs]
    assert all(p.images for p in ours)


def test_a_worker_draws_its_own_shards_at_the_position_the_loop_names(tiny_dirs, samples, tmp_path):
    # 13 samples in shards of 3 rows: [0-2] [3-5] [6-8] [9-11] [12]; of 2 workers, worker 1 takes the last two
    # shards, samples 9..12, and starts over after them.
    assert len(samples) == 13
    uri = str(tmp_path / "shards")
    write_shards(samples, uri, rows_per_shard=3)
    config = CONFIG.model_copy(update={"data": CONFIG.data.model_copy(update={"train_shards": uri})})
    shard = WorkerShard(1, 2, tuple(list_shards(uri)))
    worker = RolloutWorker(tiny_dirs["text"], config, shard=shard)
    ids = [s.sample_id for s in samples]
    own, groups = worker.rollout_own(0, 2, seed=7)
    assert [s.sample_id for s in own] == [g.sample_id for g in groups] == ids[9:11]
    assert all(len(g.completions) == 3 for g in groups)
    assert [s.sample_id for s in worker.draw(2, 3)] == [ids[11], ids[12], ids[9]]  # a second epoch begins
    assert [s.sample_id for s in worker.draw(1, 1)] == [ids[10]]  # behind the reader (a retried call): reopened
    resumed = RolloutWorker(tiny_dirs["text"], config, engine=worker.engine, shard=WorkerShard(1, 2, shard.shards,
                                                                                               skip=5))
    assert resumed.reader.position == 5  # a resumed run's cursor: its reader starts there
    assert [s.sample_id for s in resumed.draw(5, 2)] == ids[10:12]
