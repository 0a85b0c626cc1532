"""`ExecutorWorker`: the plain class inside each executor actor of stage 2. It runs the first step of each
sampled plan through the frozen executor against the sample's observation and returns what the stage-2 reward
scores: the grounded step and its result (None when the plan had no readable first step or nothing could be
executed)."""

from __future__ import annotations

from collections.abc import Sequence

from tracer1.executors.base import make_executor, observation_from_sample
from tracer1.plan import Step, parse_plan


class ExecutorWorker:
    def __init__(self, executor_cfg, env_cfg=None):
        self.executor = make_executor(executor_cfg, env_config=env_cfg)

    def first_steps(self, pairs: Sequence[tuple[str, object]]) -> list[tuple[Step | None, str | None]]:
        """(grounded first step, result) of each (plan text, planning sample): the plan's first step executed on
        the sample's observation."""
        out = []
        for plan, sample in pairs:
            steps = parse_plan(plan).steps
            if not steps:
                out.append((None, None))
                continue
            execution = self.executor.execute(steps[0], observation_from_sample(sample))
            out.append((execution.grounded_step, execution.result))
        return out

    def close(self) -> None:
        self.executor.close()
