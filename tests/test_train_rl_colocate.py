"""`cluster.colocate` in the stage-1 loop, shrunk, on a local Ray with transformers engines: rollout engine i lives
in learner rank i's bundle, and each step puts the engines to sleep for the learner update and wakes them before
the weight sync (sleep → step → wake → sync). The worker classes are the real ones, each call also noted in a
file the test reads back (the actors run in other processes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray

from tracer1.learner.worker import LearnerWorker
from tracer1.models.tiny import build_tiny_planner
from tracer1.rollout import RolloutWorker
from tracer1.run import main
from tracer1.train import rl

SMALL = ["--config", str(Path(__file__).parents[1] / "configs" / "smoke.yaml")]


def noting(cls, log: Path, methods: tuple[str, ...]) -> type:
    """`cls` whose `methods` append their name to `log` as they start."""

    def noted(name):
        def call(self, *args, **kwargs):
            with open(log, "a") as f:
                f.write(f"{name}\n")
            return getattr(cls, name)(self, *args, **kwargs)
        return call

    return type(cls.__name__, (cls,), {m: noted(m) for m in methods})


@pytest.mark.slow
def test_colocated_engines_sleep_through_each_learner_update(tmp_path, monkeypatch):
    log = tmp_path / "calls.txt"
    monkeypatch.setattr(rl, "RolloutWorker", noting(RolloutWorker, log, ("sleep", "wake", "update_weights")))
    monkeypatch.setattr(rl, "LearnerWorker", noting(LearnerWorker, log, ("step",)))
    out = tmp_path / "runs"
    try:
        assert main(["stage=1", f"logging.out_dir={out}", "run_name=colocated", "algorithm.total_steps=2",
                     "cluster.colocate=true", "rollout.num_workers=2", "learner.num_ranks=2",
                     "learner.grad_accum_steps=1", "checkpoint.every_steps=0", "sft.eval_samples=2",
                     "algorithm.filter_flat_groups=false",  # an untrained planner: a step even without a spread
                     f"checkpoint.init_from={build_tiny_planner(tmp_path / 'planner', kind='text')}", *SMALL]) == 0
    finally:
        ray.shutdown()
    calls = log.read_text().split()
    one_step = ["sleep"] * 2 + ["step"] * 2 + ["wake"] * 2 + ["update_weights"] * 2  # 2 engines, 2 ranks
    assert calls == one_step * 2, calls
