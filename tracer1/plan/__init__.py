"""The plan language: one vocabulary of steps, a parser that never raises, a canonical formatter and the
0..1000 coordinate grid. Everything in tracer1 that reads or writes plans goes through this package."""

from tracer1.plan.coords import (
    Box, box_center, box_from_pixels, box_from_xywh, from_pixels, from_smart_resized, from_unit, smart_resize,
    to_pixels, to_smart_resized, to_unit,
)
from tracer1.plan.grammar import (
    MAX_STEPS, ParsedPlan, as_step, format_plan, format_step, parse_plan, parse_step, problem_kind,
)
from tracer1.plan.steps import (
    ACTIONS, COMMON_KEYS, DIRECTIONS, FINISH_STATUSES, GRID, ActionSpec, Point, Step, same_step, step_problems,
    step_signature,
)

__all__ = [
    "ACTIONS", "COMMON_KEYS", "DIRECTIONS", "FINISH_STATUSES", "GRID", "MAX_STEPS", "ActionSpec", "Box",
    "ParsedPlan", "Point", "Step", "as_step", "box_center", "box_from_pixels", "box_from_xywh", "format_plan",
    "format_step", "from_pixels", "from_smart_resized", "from_unit", "parse_plan", "parse_step", "problem_kind",
    "same_step", "smart_resize", "step_problems", "step_signature", "to_pixels", "to_smart_resized", "to_unit",
]
