"""Tool-use benchmarks: GTA (ToolAcc, AnsAcc) and GAIA-style answer accuracy, by the rules of REFERENCE.md.

The answer scored is what the prediction said: the execution's `result` when given, else the answer step's
own text. A first step of the wrong kind (a tool call where the answer is due, or the reverse) is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tracer1.data.schema import Sample
from tracer1.eval.benchmarks.common import BenchmarkResult, Prediction, pair, result
from tracer1.plan import Step
from tracer1.rewards import GroundingLabel
from tracer1.rewards.match import gaia_answer_match, gta_answer_match


def gta_tool_right(step: Step | None, label: GroundingLabel) -> bool:
    """GTA's ToolAcc for one tool-call step: the step calls the reference tool (names compared exactly)."""
    return step is not None and step.action == "call" and step.tool == label.tool


def gta_answer_right(step: Step | None, said: str | None, gt_answer: Any) -> bool | None:
    """GTA's AnsAcc for one answer step: an `answer` whose text has an alias of every whitelist group as a whole
    word and no blacklist alias (or, for a list of references, one of them). None when the item has no
    gt_answer (GTA does not score queries whose answer is an image)."""
    if not gt_answer:
        return None
    return step is not None and step.action == "answer" and gta_answer_match(said or "", gt_answer) is True


def score_gta(predictions: Iterable[Prediction | Mapping], samples: Iterable[Sample], *,
              only_predicted: bool = False) -> BenchmarkResult:
    """tool_acc over the samples whose label is a tool call, ans_acc over those whose label is the final answer
    with a gt_answer; answer samples without one are counted as unscored_answers."""
    scored = pair(predictions, samples, only_predicted)
    tools, answers = [], []
    unscored = 0
    for s in scored:
        label = s.sample.label
        if label is None:
            s.problems.append("the sample has no grounding label; not scored")
            unscored += 1
        elif label.action == "call":
            tools.append(float(gta_tool_right(s.step, label)))
        elif label.action == "answer" and (right := gta_answer_right(s.step, s.said, label.answers)) is not None:
            answers.append(float(right))
        else:
            unscored += 1
    return result("gta", scored, {"tool_acc": tools, "ans_acc": answers}, {"unscored": unscored})


def gaia_answer_right(step: Step | None, said: str | None, reference: str) -> bool:
    """GAIA's question scorer for one answer step (numbers compared as numbers with `$ % ,` removed, `,`/`;`
    lists element-wise, other strings without case, whitespace and punctuation)."""
    return step is not None and step.action == "answer" and gaia_answer_match(said, reference)


def score_gaia(predictions: Iterable[Prediction | Mapping], samples: Iterable[Sample], *,
               only_predicted: bool = False) -> BenchmarkResult:
    """answer_acc over the samples whose label is an answer with a reference text (one per question); other
    samples (tool-call steps, answers judged by a whitelist only) are counted as unscored."""
    scored = pair(predictions, samples, only_predicted)
    answers = []
    unscored = 0
    for s in scored:
        label = s.sample.label
        if label is not None and label.action == "answer" and label.text is not None:
            answers.append(float(gaia_answer_right(s.step, s.said, label.text)))
        else:
            unscored += 1
    return result("gaia", scored, {"answer_acc": answers}, {"unscored": unscored})
