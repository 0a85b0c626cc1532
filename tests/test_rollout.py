"""RolloutWorker on the tiny planners with the transformers engine: G plans per sample in order, the prompt ids
the learner will see, reproducible seeds, weight updates; and the prompt side loaded without weights when the
engine holds the model elsewhere (as vLLM does)."""

from __future__ import annotations

from tiny_planners import one_thread, samples, tiny_dirs  # noqa: F401  (fixtures)

from tracer1.config import RunConfig
from tracer1.engines import HFEngine
from tracer1.models.inputs import encode_prompt
from tracer1.rollout import RolloutWorker

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
    for group, prompt in zip(groups, worker.prompts(batch)):
        assert group.prompt_token_ids == list(encode_prompt(worker.bundle, prompt).input_ids)
        assert all(1 <= len(c.token_ids) <= 12 and len(c.logprobs) == len(c.token_ids) for c in group.completions)
    again = worker.rollout(batch, seed=7)
    assert [g.texts for g in again] == [g.texts for g in groups]  # the step's seed fixes the plans
    assert [len(g.completions) for g in worker.rollout(batch, greedy=True)] == [1, 1, 1]
    assert worker.rollout([]) == []


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
    ours = worker.prompts(samples[:2])
    theirs = RolloutWorker(tiny_dirs["vl"], CONFIG, engine=hf).prompts(samples[:2])
    assert [p.text for p in ours] == [p.text for p in theirs]
    assert [[im.tobytes() for im in p.images] for p in ours] == [[im.tobytes() for im in p.images] for p in theirs]
    assert all(p.images for p in ours)
