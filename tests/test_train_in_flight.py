"""Batches in flight at a checkpoint are kept with it and come back exactly: the samples, the encoded prompts
(ids and a VLM's image patches) and every completion's ids and log-probs, without pickle."""

from __future__ import annotations

import torch
from tiny_planners import one_thread, samples, tiny_dirs  # noqa: F401  (fixtures)

from tracer1.config import RunConfig
from tracer1.rollout import RolloutWorker
from tracer1.train.actors import Answers
from tracer1.train.ahead import Batch
from tracer1.train.in_flight import load_in_flight, save_in_flight

CONFIG = RunConfig.model_validate({"rollout": {"group_size": 2, "max_new_tokens": 12}, "horizon": 5})


def test_batches_in_flight_come_back_from_a_checkpoint_exactly(tiny_dirs, samples, tmp_path):
    worker = RolloutWorker(tiny_dirs["vl"], CONFIG)
    batches = [Batch(step, samples[i:i + 2], Answers(worker.rollout(samples[i:i + 2], seed=step), 1.5, 1),
                     {"data_cursor": step, "shard_cursors": [step, 0]}, 2.5, 0, step - 3)
               for i, step in ((0, 4), (2, 5))]
    save_in_flight(tmp_path, batches)
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob("*.pt"))
    back = load_in_flight(tmp_path)
    assert sorted(back) == [4, 5]
    for batch in batches:
        again = back[batch.step]
        assert [s.sample_id for s in again.samples] == [s.sample_id for s in batch.samples]
        assert again.samples[0].screenshot == batch.samples[0].screenshot
        assert (again.data_state, again.seconds, again.lag, again.version) == \
            (batch.data_state, batch.seconds, batch.lag, batch.version)
        assert (again.answers.busy_s, again.answers.retried) == (1.5, 1)
        for g, h in zip(batch.answers.results, again.answers.results):
            assert (h.sample_id, h.prompt.input_ids, h.weights_version) == (g.sample_id, g.prompt.input_ids,
                                                                            g.weights_version)
            assert g.prompt.pixel_values is not None and torch.equal(h.prompt.pixel_values, g.prompt.pixel_values)
            assert torch.equal(h.prompt.image_grid_thw, g.prompt.image_grid_thw)
            assert [c.__dict__ for c in h.completions] == [c.__dict__ for c in g.completions]


def test_a_checkpoint_without_batches_in_flight_has_none(tmp_path):
    assert load_in_flight(tmp_path) == {}
