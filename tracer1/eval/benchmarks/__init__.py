"""Offline benchmark metrics on converted datasets, by the public scoring rules (../shared/REFERENCE.md).

    python -m tracer1.eval.benchmarks --benchmark androidcontrol --predictions preds.jsonl --data data/ac/

    from tracer1.eval.benchmarks import score_benchmark
    result = score_benchmark("mind2web", predictions, samples)   # predictions: Prediction objects or dicts
    result.metrics["step_sr"], result.per_task, result.problems

Each benchmark scores the planner's first step (`Prediction`: the plan, or the step as executed) against the
sample's grounding label with the matchers of `tracer1.rewards.match`, the same rules the stage-2 reward uses:

* `androidcontrol`: type_acc (action type); grounding_acc (click / long-press steps: the point in the element's
  box or < 0.14 from the reference point); step_success (type and arguments: typed text and app names by
  token-set F1 >= 0.5, the point for clicks, the scroll direction).
* `gui-odyssey`: ams (steps right: the type; clicks in the box or <= 0.14; text by containment or edit
  similarity >= 0.5; scroll direction); sr (episodes with every step right).
* `mind2web`: element_acc, op_f1, step_sr macro-averaged over tasks; task_sr; micro averages over steps.
* `gta`: tool_acc (tool-call steps: the right tool); ans_acc (final answers: GTA's whitelist / blacklist).
* `gaia`: answer_acc (answer steps with a reference text: GAIA's question scorer).

Variants, where tracer1 cannot follow the public evaluator to the letter: Mind2Web's element accuracy uses the
box of the first positive candidate (the one the converter keeps), and its operation F1 is `token_f1`
(lowercased, split on non-alphanumerics) rather than whitespace tokens; a `type` step on a sample whose
reference is a SELECT counts as SELECT. GTA's list-of-strings answers are judged by whole-phrase presence, not
embedding similarity, and ArgAcc is not computed. GUI-Odyssey's SR counts the episodes among the samples given:
score whole episodes for the published number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from tracer1.data.schema import Sample
from tracer1.eval.benchmarks.common import (
    BenchmarkError, BenchmarkResult, Prediction, Scored, pair, read_predictions,
)
from tracer1.eval.benchmarks.gui import (
    androidcontrol_step, androidcontrol_type, mind2web_op, mind2web_reference_op, mind2web_step, odyssey_step,
    odyssey_type, score_androidcontrol, score_gui_odyssey, score_mind2web,
)
from tracer1.eval.benchmarks.tools import (
    gaia_answer_right, gta_answer_right, gta_tool_right, score_gaia, score_gta,
)

BENCHMARKS: dict[str, Callable[..., BenchmarkResult]] = {
    "androidcontrol": score_androidcontrol,
    "gui-odyssey": score_gui_odyssey,
    "mind2web": score_mind2web,
    "gta": score_gta,
    "gaia": score_gaia,
}
# the sample sources each benchmark scores (None: any source; GTA-style toolbox samples count as GTA)
SOURCES: dict[str, tuple[str, ...] | None] = {
    "androidcontrol": ("androidcontrol",), "gui-odyssey": ("gui-odyssey",), "mind2web": ("mind2web",),
    "gta": ("gta", "toolbox"), "gaia": None,
}


def score_benchmark(name: str, predictions: Iterable[Prediction | Mapping], samples: Iterable[Sample], *,
                    only_predicted: bool = False) -> BenchmarkResult:
    """Score `predictions` on `samples` by benchmark `name` (one of BENCHMARKS). Samples must come from that
    benchmark's converter (BenchmarkError naming the first that does not). Samples without a prediction count
    as wrong unless `only_predicted`."""
    if name not in BENCHMARKS:
        raise BenchmarkError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    samples = list(samples)
    allowed = SOURCES[name]
    if allowed is not None:
        for sample in samples:
            if sample.source not in allowed:
                raise BenchmarkError(f"sample {sample.sample_id!r} is a {sample.source!r} sample; the {name} "
                                     f"benchmark scores {' or '.join(allowed)} samples")
    return BENCHMARKS[name](predictions, samples, only_predicted=only_predicted)


__all__ = [
    "BENCHMARKS", "BenchmarkError", "BenchmarkResult", "Prediction", "SOURCES", "Scored", "androidcontrol_step",
    "androidcontrol_type", "gaia_answer_right", "gta_answer_right", "gta_tool_right", "mind2web_op",
    "mind2web_reference_op", "mind2web_step", "odyssey_step", "odyssey_type", "pair", "read_predictions",
    "score_androidcontrol", "score_benchmark", "score_gaia", "score_gta", "score_gui_odyssey", "score_mind2web",
]
