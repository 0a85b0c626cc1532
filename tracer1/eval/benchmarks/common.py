"""What every benchmark shares: predictions (and reading them), pairing them with samples, the result.

A prediction is the planner's answer for one sample: its plan text (the first step is scored), or the first step
itself, optionally as executed by the frozen executor (`executed`: the grounded step with its point filled in)
and with the execution's output (`result`: a tool's output or the answer said). The step scored is `executed`
when given, else `step`, else the plan's first step. One JSON object per line in a predictions file:

    {"sample_id": "androidcontrol/101/1", "plan": "<plan>\\n1. click(target=\\"Wi-Fi\\")\\n</plan>",
     "executed": "click(target=\\"Wi-Fi\\", point=(500, 300))"}

A prediction whose text cannot be read counts as wrong and its problem is listed; never an exception. A
prediction naming a sample that is not in the data, or the same sample twice, is a BenchmarkError naming the
file and row: scores computed against the wrong data would look plausible and be meaningless.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tracer1.data.schema import Sample
from tracer1.plan import Step, as_step, parse_plan

PREDICTION_FIELDS = ("sample_id", "plan", "step", "executed", "result")
MAX_LISTED = 10     # problems shown by `BenchmarkResult.table` (the JSON keeps all of them)


class BenchmarkError(ValueError):
    """Input that cannot be scored (unknown or repeated sample id, unreadable predictions file, samples of another
    benchmark); the message names the file and row."""


@dataclass(frozen=True)
class Prediction:
    """The planner's output for one sample. `where` names its file and row in messages."""

    sample_id: str
    plan: Any = None          # the planner's text; its first step is scored unless `step`/`executed` is given
    step: Any = None          # the first step (a Step or its text), instead of the plan
    executed: Any = None      # the first step as the executor grounded it (a Step or its text; point filled in)
    result: Any = None        # what the execution returned (tool output, the answer said), or None
    where: str = ""

    @classmethod
    def from_dict(cls, row: Mapping, where: str) -> Prediction:
        """A prediction from a JSON object; a row without a string `sample_id` is a BenchmarkError."""
        if not isinstance(row, Mapping):
            raise BenchmarkError(f"{where}: a prediction is a JSON object, not {type(row).__name__}")
        sample_id = row.get("sample_id")
        if not isinstance(sample_id, str) or not sample_id:
            raise BenchmarkError(f"{where}: missing sample_id (a prediction needs the id of the sample it answers)")
        return cls(sample_id, row.get("plan"), row.get("step"), row.get("executed"), row.get("result"), where)

    def first_step(self) -> tuple[Step | None, list[str]]:
        """The step to score and the problems met reading it (None when nothing readable was given). Never
        raises: whatever goes wrong reading the prediction is its problem."""
        try:
            return self._first_step()
        except Exception as exc:  # noqa: BLE001 — an unreadable prediction counts as wrong, never an exception
            return None, [f"could not read the prediction ({type(exc).__name__}: {exc})"]

    def _first_step(self) -> tuple[Step | None, list[str]]:
        problems: list[str] = []
        if self.executed is not None:
            return as_step(self.executed, problems, where="executed", strict=False), problems
        if self.step is not None:
            return as_step(self.step, problems, where="step", strict=False), problems
        if self.plan is None:
            return None, ["no plan, step or executed step given"]
        parsed = parse_plan(self.plan)
        problems += parsed.problems
        if not parsed.steps and not problems:
            problems.append("the plan has no step")
        return (parsed.steps[0] if parsed.steps else None), problems

    def said(self, step: Step | None) -> str | None:
        """The text the step produced: the execution's `result` when given, else the step's own text."""
        if self.result is not None:
            return self.result if isinstance(self.result, str) else json.dumps(self.result)
        return step.text if step is not None else None


def read_predictions(path: str | os.PathLike) -> list[Prediction]:
    """Predictions from a JSON-lines file, each named "<file>: line N"; a bad line is a BenchmarkError."""
    path = Path(path)
    if not path.is_file():
        raise BenchmarkError(f"{path}: no such predictions file")
    predictions = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}: line {number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BenchmarkError(f"{where}: not valid JSON ({exc})") from None
            predictions.append(Prediction.from_dict(row, where))
    return predictions


@dataclass
class Scored:
    """One sample with the step scored for it (None: no readable prediction) and what was wrong with it."""

    sample: Sample
    prediction: Prediction | None
    step: Step | None
    problems: list[str]

    @property
    def said(self) -> str | None:
        return self.prediction.said(self.step) if self.prediction is not None else None


def pair(predictions: Iterable[Prediction | Mapping], samples: Iterable[Sample],
         only_predicted: bool = False) -> list[Scored]:
    """Each sample with its prediction, in the samples' order. Samples without a prediction are scored as wrong
    ("no prediction"), or left out with `only_predicted`."""
    by_id: dict[str, Sample] = {}
    for sample in samples:
        if sample.sample_id in by_id:
            raise BenchmarkError(f"sample_id {sample.sample_id!r} appears twice in the data")
        by_id[sample.sample_id] = sample
    found: dict[str, Prediction] = {}
    for i, prediction in enumerate(predictions):
        if not isinstance(prediction, Prediction):
            prediction = Prediction.from_dict(prediction, f"predictions[{i}]")
        where = prediction.where or f"predictions[{i}]"
        if prediction.sample_id not in by_id:
            raise BenchmarkError(f"{where}: sample_id {prediction.sample_id!r} is not in the data "
                                 f"({len(by_id)} samples)")
        if prediction.sample_id in found:
            first = found[prediction.sample_id].where or "an earlier prediction"
            raise BenchmarkError(f"{where}: a second prediction for {prediction.sample_id!r} (first: {first})")
        found[prediction.sample_id] = prediction
    scored = []
    for sample_id, sample in by_id.items():
        prediction = found.get(sample_id)
        if prediction is None:
            if not only_predicted:
                scored.append(Scored(sample, None, None, ["no prediction"]))
            continue
        step, problems = prediction.first_step()
        scored.append(Scored(sample, prediction, step, problems))
    return scored


@dataclass
class BenchmarkResult:
    """A benchmark's scores. `metrics`: name -> value (0..1; None when nothing could be scored); `support`:
    name -> how many items (steps, tasks) each value averages; `counts`: samples, predictions, missing,
    malformed and benchmark-specific tallies; `per_task`: task id -> metrics where the benchmark macro-averages
    over tasks; `problems`: "sample_id: problem" for every prediction read with a problem or not scorable."""

    benchmark: str
    metrics: dict[str, float | None]
    support: dict[str, int]
    counts: dict[str, int]
    per_task: dict[str, dict[str, float]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        c = self.counts
        lines = [f"{self.benchmark}: {c['samples']} samples, {c['predictions']} predictions "
                 f"({c['missing']} missing, {c['malformed']} unreadable)",
                 f"  {'metric':<22}{'value':>9}{'n':>8}"]
        for name, value in self.metrics.items():
            shown = "-" if value is None else f"{100 * value:.2f}%"
            lines.append(f"  {name:<22}{shown:>9}{self.support.get(name, 0):>8}")
        extra = {k: v for k, v in c.items() if k not in ("samples", "predictions", "missing", "malformed")}
        if extra:
            lines.append("  " + ", ".join(f"{k} {v}" for k, v in extra.items()))
        if self.per_task:
            lines.append(f"  per task: {len(self.per_task)} tasks (in the JSON)")
        for problem in self.problems[:MAX_LISTED]:
            lines.append(f"  problem: {problem}")
        if len(self.problems) > MAX_LISTED:
            lines.append(f"  ... and {len(self.problems) - MAX_LISTED} more problems (in the JSON)")
        return "\n".join(lines)


def mean(values: Sequence[float]) -> float | None:
    """The mean, or None for no values (a metric with nothing to average is not 0%)."""
    return math.fsum(values) / len(values) if values else None


def result(benchmark: str, scored: Sequence[Scored], metrics: dict[str, Sequence[float]],
           counts: dict[str, int] | None = None, per_task: dict[str, dict[str, float]] | None = None,
           macro: dict[str, float | None] | None = None, macro_support: int = 0) -> BenchmarkResult:
    """A BenchmarkResult from per-item values: `metrics` name -> the 0/1 (or 0..1) value of each item averaged;
    `macro` name -> values already averaged over `macro_support` tasks."""
    values = dict(macro or {})                     # macro-averages first: they are the benchmark's headline
    support = {name: macro_support for name in values}
    for name, items in metrics.items():
        values[name] = mean(items)
        support[name] = len(items)
    base = {"samples": len(scored), "predictions": sum(s.prediction is not None for s in scored),
            "missing": sum(s.prediction is None for s in scored),
            "malformed": sum(s.prediction is not None and s.step is None for s in scored)}
    problems = [f"{s.sample.sample_id}: {p}" for s in scored for p in s.problems]
    return BenchmarkResult(benchmark, values, support, {**base, **(counts or {})}, per_task or {}, problems)


def by_task(scored: Sequence[Scored], key: Callable[[Scored], str] = lambda s: s.sample.episode_id
            ) -> dict[str, list[int]]:
    """Indices of `scored` grouped by task (episode id by default), in first-seen order."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(scored):
        groups.setdefault(key(s), []).append(i)
    return groups
