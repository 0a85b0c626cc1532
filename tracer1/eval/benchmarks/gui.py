"""GUI benchmarks: AndroidControl, GUI-Odyssey and Multimodal-Mind2Web, by the rules of REFERENCE.md.

Points are on tracer1's 0..1000 grid on both axes, so the grid distance divided by 1000 per axis is the
benchmarks' normalised distance sqrt((dx/W)^2 + (dy/H)^2). Each `*_step` function judges one step against a
sample's grounding label; each `score_*` pairs predictions with samples and aggregates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tracer1.data.schema import Sample
from tracer1.eval.benchmarks.common import BenchmarkResult, Prediction, Scored, by_task, mean, pair, result
from tracer1.plan import Step
from tracer1.rewards import GroundingLabel
from tracer1.rewards.match import click_match, point_in_box, text_contain_or_edit, text_match, token_f1

LOCATED = ("click", "long_press")  # reference actions whose point is scored


def _no_point(s: Scored) -> None:
    """Note a step that should say where it acts but has no point (the planner's step was not grounded)."""
    if s.step is not None and s.step.point is None:
        s.problems.append(f"{s.step.action} has no point to score (give the executed step or a point)")


def _labelled(scored: list[Scored]) -> tuple[list[Scored], int]:
    """The samples that have a grounding label, and how many had none (listed as a problem, not scored)."""
    kept = []
    for s in scored:
        if s.sample.label is None:
            s.problems.append("the sample has no grounding label; not scored")
        else:
            kept.append(s)
    return kept, len(scored) - len(kept)


# --- AndroidControl -------------------------------------------------------------------------------------------

# AndroidControl's own names for tracer1's key presses (navigate_home and navigate_back are action types there)
ANDROIDCONTROL_KEYS = {"home": "navigate_home", "back": "navigate_back", "enter": "keyboard_enter"}


def androidcontrol_type(action: str, key: str | None = None) -> str:
    """The AndroidControl action type of a tracer1 action: type and input_text are both `type`; a key press is
    the key's own action type."""
    if action == "press":
        return ANDROIDCONTROL_KEYS.get(key or "", f"press_{key}")
    return action


def androidcontrol_step(step: Step | None, label: GroundingLabel) -> tuple[bool, bool | None, bool]:
    """(type right, grounding right, step success) of one step (OS-Atlas / UI-TARS convention).

    Grounding is judged only when the reference is a click or long press (else None): right when the action
    type is right and the point is inside the target's box or strictly within 0.14 of the reference point.
    Step success: type right and its arguments right: the point (grounded) for clicks, token-set F1 >= 0.5 for
    typed text and app names, the direction for scrolls; key presses and wait by type alone. A `type` step is
    judged by its text only (the field it types into is not scored).
    """
    located = label.action in LOCATED
    if step is None:
        return False, (False if located else None), False
    type_ok = androidcontrol_type(step.action, step.key) == androidcontrol_type(label.action, label.key)
    if located:
        grounded = type_ok and click_match(step.point, label.point, label.box)
        return type_ok, grounded, grounded
    if not type_ok:
        return False, None, False
    if label.action == "type":
        return True, None, text_match(step.text, label.text)
    if label.action == "scroll":
        return True, None, step.direction == label.direction
    if label.action == "open_app":
        return True, None, text_match(step.app, label.app)
    return True, None, True


def score_androidcontrol(predictions: Iterable[Prediction | Mapping], samples: Iterable[Sample], *,
                         only_predicted: bool = False) -> BenchmarkResult:
    """type_acc and step_success over all steps, grounding_acc over the click / long-press steps."""
    scored, unlabelled = _labelled(pair(predictions, samples, only_predicted))
    types, grounding, success = [], [], []
    for s in scored:
        type_ok, grounded, ok = androidcontrol_step(s.step, s.sample.label)
        types.append(float(type_ok))
        success.append(float(ok))
        if grounded is not None:
            grounding.append(float(grounded))
            if type_ok:
                _no_point(s)
    return result("androidcontrol", scored, {"type_acc": types, "grounding_acc": grounding,
                                             "step_success": success}, {"unlabelled": unlabelled})


# --- GUI-Odyssey ----------------------------------------------------------------------------------------------

ODYSSEY_ACTIONS = {"click": "CLICK", "long_press": "LONG_PRESS", "scroll": "SCROLL", "type": "TEXT"}
ODYSSEY_KEYS = {"home": "KEY_HOME", "back": "KEY_BACK", "recents": "KEY_APPSELECT"}


def odyssey_type(action: str, key: str | None = None, status: str | None = None) -> str:
    """GUI-Odyssey's action type of a tracer1 action (a finish without a status is COMPLETE)."""
    if action == "press":
        return ODYSSEY_KEYS.get(key or "", f"KEY_{(key or '').upper()}")
    if action == "finish":
        return "INCOMPLETE" if status == "infeasible" else "COMPLETE"
    return ODYSSEY_ACTIONS.get(action, action.upper())


def odyssey_step(step: Step | None, label: GroundingLabel) -> bool:
    """Whether one step is right by GUI-Odyssey's evaluator: the type must match; a click or long press is right
    inside the annotated box, else within a normalised distance <= 0.14 of the reference point; typed text is
    right when either text contains the other or 1 - edit_distance / max_len >= 0.5 (case kept; as in the
    evaluator an empty text is contained in any text); scrolls by direction; everything else by type."""
    if step is None:
        return False
    if odyssey_type(step.action, step.key, step.status) != odyssey_type(label.action, label.key, label.status):
        return False
    if label.action in LOCATED:
        return click_match(step.point, label.point, label.box, inclusive=True)
    if label.action == "type":
        return text_contain_or_edit(step.text, label.text, empty_is_substring=True)
    if label.action == "scroll":
        return step.direction == label.direction
    return True


def score_gui_odyssey(predictions: Iterable[Prediction | Mapping], samples: Iterable[Sample], *,
                      only_predicted: bool = False) -> BenchmarkResult:
    """AMS: the share of steps right; SR: the share of episodes (among the samples given) with every step right."""
    scored, unlabelled = _labelled(pair(predictions, samples, only_predicted))
    right = []
    for s in scored:
        ok = odyssey_step(s.step, s.sample.label)
        right.append(float(ok))
        if not ok and s.sample.label.action in LOCATED and s.step is not None:
            _no_point(s)
    episodes = [float(all(right[i] for i in indices)) for indices in by_task(scored).values()]
    return result("gui-odyssey", scored, {"ams": right, "sr": episodes},
                  {"episodes": len(episodes), "unlabelled": unlabelled})


# --- Multimodal-Mind2Web --------------------------------------------------------------------------------------

MIND2WEB_AS_CLICK = ("HOVER", "ENTER")  # Mind2Web scores these operations as CLICK


def mind2web_reference_op(sample: Sample) -> str:
    """The benchmark's operation of a sample: the converter keeps it in meta["op"] (SELECT became `type`);
    HOVER and ENTER count as CLICK. Without meta, from the label's action."""
    op = str(sample.meta.get("op") or "").upper()
    if not op and sample.label is not None:
        op = {"click": "CLICK", "type": "TYPE"}.get(sample.label.action, sample.label.action.upper())
    return "CLICK" if op in MIND2WEB_AS_CLICK else op


def mind2web_op(step: Step, reference_op: str) -> str:
    """The operation a step performs: click -> CLICK; type -> TYPE, or SELECT when the reference is a SELECT
    (the plan language has no select: typing the option into the focused <select> is how it chooses one)."""
    if step.action == "click":
        return "CLICK"
    if step.action == "type":
        return "SELECT" if reference_op == "SELECT" else "TYPE"
    return step.action.upper()


def mind2web_step(step: Step | None, label: GroundingLabel, reference_op: str) -> tuple[bool, float, bool]:
    """(element right, operation F1, step success) of one step. Element: the step's point is inside the positive
    candidate's box (no box: never right). Operation F1: token F1 between "OP value" strings (the value only for
    TYPE and SELECT). Step success: element right and operation F1 == 1."""
    if step is None:
        return False, 0.0, False
    element = point_in_box(step.point, label.box)
    op = mind2web_op(step, reference_op)
    predicted = f"{op} {step.text or ''}" if op in ("TYPE", "SELECT") else op
    reference = f"{reference_op} {label.text or ''}" if reference_op in ("TYPE", "SELECT") else reference_op
    f1 = token_f1(predicted, reference)
    return element, f1, element and f1 == 1.0


def score_mind2web(predictions: Iterable[Prediction | Mapping], samples: Iterable[Sample], *,
                   only_predicted: bool = False) -> BenchmarkResult:
    """element_acc, op_f1 and step_sr macro-averaged over tasks (the mean over tasks of each task's mean over its
    steps, as Mind2Web and SeeClick report them), task_sr (tasks with every step right), and the micro averages
    over all steps."""
    scored, unlabelled = _labelled(pair(predictions, samples, only_predicted))
    element, f1, success = [], [], []
    for s in scored:
        e, f, ok = mind2web_step(s.step, s.sample.label, mind2web_reference_op(s.sample))
        element.append(float(e))
        f1.append(f)
        success.append(float(ok))
        if not e and s.step is not None:
            _no_point(s)
    per_task = {}
    for task, indices in by_task(scored).items():
        per_task[task] = {"element_acc": mean([element[i] for i in indices]), "op_f1": mean([f1[i] for i in indices]),
                          "step_sr": mean([success[i] for i in indices]), "steps": len(indices)}
    tasks = list(per_task.values())
    macro = {name: mean([t[name] for t in tasks]) for name in ("element_acc", "op_f1", "step_sr")}
    macro["task_sr"] = mean([float(t["step_sr"] == 1.0) for t in tasks])
    no_box = sum(s.sample.label.box is None for s in scored)
    return result("mind2web", scored, {"micro_element_acc": element, "micro_op_f1": f1, "micro_step_sr": success},
                  {"tasks": len(tasks), "no_box": no_box, "unlabelled": unlabelled}, per_task, macro, len(tasks))
