"""Frozen tool agents that turn the first step of a plan into a concrete action (DESIGN.md §1, stage 2).

* `base` — the contract: `Executor.execute(step, observation) -> Execution`, the `Observation` keys,
  `observation_from_env` / `observation_from_sample`, and `make_executor(config.executor, ...)`;
* `a11y` — `A11yExecutor`: deterministic grounding in the accessibility tree / DOM (built-in world, MiniWoB++);
* `vlm` — `VLMExecutor`: a UI-TARS-style grounding model behind any `RolloutEngine`;
* `uitars` — `parse_grounding_answer`: UI-TARS answers (points, boxes, actions) onto the 0..1000 grid;
* `toolbox` — `ToolboxExecutor`: tool calls through the toolbox world's tools and sandbox;
* `oracle` — `OracleExecutor`: the sample's grounding label as a perfect grounder (ablations only).
"""

from tracer1.executors.a11y import A11yExecutor, match_target
from tracer1.executors.base import (
    Execution, Executor, Observation, make_executor, observation_from_env, observation_from_sample,
)
from tracer1.executors.oracle import OracleExecutor
from tracer1.executors.toolbox import ToolboxExecutor, sample_images
from tracer1.executors.uitars import GroundingAnswer, parse_grounding_answer
from tracer1.executors.vlm import VLMExecutor, chat_template_renderer, grounding_messages, step_instruction

__all__ = ["A11yExecutor", "Execution", "Executor", "GroundingAnswer", "Observation", "OracleExecutor",
           "ToolboxExecutor", "VLMExecutor", "chat_template_renderer", "grounding_messages", "make_executor",
           "match_target", "observation_from_env", "observation_from_sample", "parse_grounding_answer",
           "sample_images", "step_instruction"]
