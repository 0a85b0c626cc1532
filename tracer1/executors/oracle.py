"""The oracle executor: perfect grounding from the sample's label, for ablations (how much of a planner's
stage-2 error is the grounder's?).

When the observation carries the sample's `GroundingLabel` (`observation_from_sample` puts it there) and the
planned step needs grounding and has the label's action, the step acts at the label's point (the target box's
centre when only a box is known) whatever its target says. Everything else goes to the fallback executor
(the a11y grounder by default), as do observations without a label (online, in a live env).

Because the target's wording is not read, this is an upper bound for evaluation, not a training reward: under
it any target earns the click.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tracer1.envs.base import element_at
from tracer1.executors.base import Execution, Executor, elements_of, needs_grounding
from tracer1.plan import Step, box_center


class OracleExecutor(Executor):
    kind = "oracle"

    def __init__(self, fallback: Executor | None = None):
        if fallback is None:
            from tracer1.executors.a11y import A11yExecutor

            fallback = A11yExecutor()
        self.fallback = fallback

    def _execute(self, step: Step, observation: Mapping[str, Any]) -> Execution:
        label = observation.get("label")
        point = None
        if label is not None and needs_grounding(step) and step.action == label.action:
            point = label.point if label.point is not None else (box_center(label.box) if label.box else None)
        if point is None:
            return self.fallback.execute(step, observation)
        element = element_at(elements_of(observation), point)
        return Execution(step, step._replace(point=point), point=point, element=element, info={"match": "label"})
