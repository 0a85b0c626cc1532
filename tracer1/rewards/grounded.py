"""Stage 2 — grounded execution feedback: was the executed first step of the plan right?

The frozen executor turns the plan's first step into a concrete action (a `Step` with its `point` filled in for
GUI actions) and, for tools and answers, a result text. `grounded_reward` compares that with the sample's
grounding labels by the benchmarks' rules (REFERENCE.md): a click is right inside the target's box (enlarged by
`box_margin`) or within `point_radius` of the reference point (AndroidControl's strict `<`), as GUI-Odyssey's and
AitW's evaluators do; typed text by the
configured text rule; scroll direction, key and finish status exactly; answers by GTA's whitelist/blacklist
when the label has one, else by GAIA's answer normalisation.

Reward: 1.0 right, 0.0 wrong (or not executed), minus `format_penalty` once when the plan was read with
problems; a plan with no readable step scores `unparseable`, as in stage 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tracer1.plan import Box, ParsedPlan, Point, Step, parse_plan
from tracer1.rewards.match import click_match, gaia_answer_match, gta_answer_match, text_match


@dataclass(frozen=True)
class GroundingLabel:
    """What the sample says the first step must do. Fields left None are not checked."""

    action: str
    box: Box | None = None                # target element's box on the 0..1000 grid
    point: Point | None = None            # reference point on the grid (used when no box is known)
    text: str | None = None               # expected typed text, answer, or tool result
    direction: str | None = None
    key: str | None = None
    app: str | None = None
    status: str | None = None
    tool: str | None = None
    answers: Any = None                   # GTA `gt_answer`: {"whitelist": ..., "blacklist": ...} or [strings]


def execution_correct(executed: Step, label: GroundingLabel, cfg, result: str | None = None) -> bool:
    """Whether an executed action satisfies the label (see the module docstring). `cfg` is a `RewardConfig`."""
    if executed.action != label.action:
        return False
    if label.tool is not None and executed.tool != label.tool:
        return False
    if label.box is not None or label.point is not None:
        # typing needs a location only when the executor reports one (it may type into the focused field)
        if executed.point is None and executed.action != "type":
            return False
        if executed.point is not None and not click_match(
                executed.point, label.point, label.box, radius=cfg.point_radius, margin=cfg.box_margin):
            return False
    if label.direction is not None and executed.direction != label.direction:
        return False
    if label.key is not None and executed.key != label.key:
        return False
    if label.status is not None and (executed.status or "success") != label.status:
        return False
    if label.app is not None and not text_match(executed.app or "", label.app, cfg.text_match,
                                                cfg.text_threshold):
        return False
    said = result if result is not None else executed.text
    if label.answers is not None:
        return gta_answer_match(said or "", label.answers) is True
    if label.text is not None:
        if executed.action == "type":
            return text_match(said or "", label.text, cfg.text_match, cfg.text_threshold)
        return gaia_answer_match(said or "", label.text)
    return True


def grounded_reward(plan: str | ParsedPlan, executed: Step | None, label: GroundingLabel, cfg,
                    result: str | None = None) -> float:
    """The stage-2 reward of one sampled plan whose first step was executed as `executed` (None: the executor
    could not act on it) with tool/answer output `result`."""
    return outcome_reward(plan, lambda: executed is not None and execution_correct(executed, label, cfg, result), cfg)


def outcome_reward(plan: str | ParsedPlan, right: Callable[[], bool], cfg) -> float:
    """The stage-2 scale (offline and online): 1.0 when `right()`, else 0.0, minus `format_penalty` once for a
    plan read with problems; `unparseable` for a plan with no readable step (`right` is then not asked)."""
    parsed = plan if isinstance(plan, ParsedPlan) else parse_plan(plan)
    if not parsed.steps:
        return cfg.unparseable
    return (1.0 if right() else 0.0) - (cfg.format_penalty if parsed.problems else 0.0)
