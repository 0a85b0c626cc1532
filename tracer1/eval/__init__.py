"""Evaluation of planners on held-out samples (offline) — the numbers every stage reports before and after."""

from tracer1.eval.planning import PlanningReport, evaluate_planning, grounding_check

__all__ = ["PlanningReport", "evaluate_planning", "grounding_check"]
