"""Curves of a run: its metrics.jsonl read back into series, drawn with matplotlib (Agg) as PNG bytes.

matplotlib is imported inside the drawing functions: training code imports tracer1.report only at the end of a
run, and the vLLM environment never needs it to train."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

STAGE_PREFIXES = ("sft/", "stage1/", "stage2/", "stage3/")  # what MetricsLogger puts before every key of a stage
# Held-out measures that are fractions (drawn on one 0..1 axis) and those that are rewards (their own axis).
EVAL_RATES = ("parse_rate", "greedy_parse_rate", "first_step_action", "first_step_exact", "first_step_grounded")
EVAL_REWARDS = ("reward", "greedy_reward")
EVAL_LABELS = {"reward": "sampled plans", "greedy_reward": "greedy plans"}  # legend names; others: key, spaced
TIME_PARTS = ("rollout", "execute", "reward", "plan", "env", "learner", "sync")  # stages 1–2, then stage 3
# Stage 3's held-out success sets (eval/<set>_success) and their legend names.
EPISODE_SETS = {"trained": "held-out seeds, trained families", "held_out": "held-out families"}


class ReportError(ValueError):
    """Input a report cannot be built from, with the file (and line) that is wrong."""


@dataclass
class Metrics:
    """Every scalar series of a run: key (stage prefix removed) -> {step: value}, the last value logged for a
    step winning (a resumed run logs its steps again)."""

    series: dict[str, dict[int, float]] = field(default_factory=dict)
    prefix: str = ""

    def steps(self, key: str) -> list[int]:
        return sorted(self.series.get(key, {}))

    def values(self, key: str) -> list[float]:
        points = self.series.get(key, {})
        return [points[s] for s in sorted(points)]

    def has(self, key: str) -> bool:
        return bool(self.series.get(key))


def read_metrics(path: str | Path) -> Metrics:
    """metrics.jsonl (see tracer1.metrics) as series; text records (sampled plans) are left out."""
    path = Path(path)
    raw: dict[str, dict[int, float]] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ReportError(f"{path}: line {number}: not JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                raise ReportError(f"{path}: line {number}: a metrics record needs an integer 'step'")
            if "text" in record:
                continue
            for key, value in record.items():
                if key in ("step", "time") or isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                raw.setdefault(key, {})[record["step"]] = float(value)
    prefix = next((p for p in STAGE_PREFIXES if raw and all(k.startswith(p) for k in raw)), "")
    return Metrics({k.removeprefix(prefix): v for k, v in raw.items()}, prefix.rstrip("/"))


# --- drawing ----------------------------------------------------------------------------------------------------

@dataclass
class Chart:
    name: str      # file stem: curve_<name>.png
    title: str
    png: bytes


def _pyplot():
    import matplotlib  # noqa: PLC0415 — see the module docstring

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def _style(ax, title: str, ylabel: str, xlabel: str, title_size: int = 11, integer_x: bool = True) -> None:
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

    ax.set_title(title, fontsize=title_size, loc="left", fontweight="bold")
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.tick_params(labelsize=8)
    if integer_x:  # steps and episodes are whole numbers
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _figure(title: str, ylabel: str, xlabel: str = "training step"):
    fig, ax = _pyplot().subplots(figsize=(5.6, 3.3), dpi=110)
    _style(ax, title, ylabel, xlabel)
    return fig, ax


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", pad_inches=0.12)  # "tight": keeps outside legends
    _pyplot().close(fig)
    return buffer.getvalue()


def _line(ax, xs: Sequence[float], ys: Sequence[float], label: str, **style) -> None:
    marker = "o" if len(xs) <= 30 else None  # a few points (evaluations) read better with markers
    ax.plot(xs, ys, label=label, marker=marker, markersize=4, linewidth=1.6, **style)


def _legend(ax) -> None:
    """Beside the axes when there are several series (inside, they hide the curves), else in a corner."""
    handles = ax.get_legend_handles_labels()[0]
    if len(handles) > 2:
        ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    elif handles:
        ax.legend(fontsize=8, frameon=False)


def reward_chart(m: Metrics) -> Chart | None:
    if not m.has("reward_mean"):
        return None
    fig, ax = _figure("Training reward (rollout groups)", "reward")
    xs, mean = m.steps("reward_mean"), m.values("reward_mean")
    _line(ax, xs, mean, "mean reward", color="C0")
    if m.has("reward_std") and m.steps("reward_std") == xs:
        std = m.values("reward_std")
        ax.fill_between(xs, [a - b for a, b in zip(mean, std)], [a + b for a, b in zip(mean, std)], color="C0",
                        alpha=0.15, label="± std within groups")
    _legend(ax)
    return Chart("reward", "Training reward", _png(fig))


LEARNER_KEYS = (("loss", "loss"), ("kl", "KL to the reference"), ("entropy", "entropy"),
                ("token_accuracy", "token accuracy"), ("grad_norm", "gradient norm"))
# Stage 3: whether a step had anything to learn from (a group whose episodes all failed, or all succeeded, has
# no advantage) and how often a stored success was replayed into an all-fail group.
SIGNAL_KEYS = (("groups_with_signal", "groups with signal (share)"), ("replays", "replayed successes"))
# Rollouts ahead of the learner (algorithm.max_staleness): how old each batch's weights were, how much of the
# generation the learner hid, and how far the engine's log-probs were from the learner's.
OFF_POLICY_KEYS = (("staleness", "staleness (updates)"), ("overlap", "rollout hidden (share)"),
                   ("behaviour_gap", "|log π − log μ| per token"), ("tis_weight_mean", "importance weight (mean)"))


def episode_success_chart(m: Metrics, before: dict | None = None) -> Chart | None:
    """Stage 3: success of the training episodes per step, and the held-out evaluations as markers (`before`,
    the stage report's, at step 0). Training episodes are sampled and drawn by the curriculum, the held-out
    ones greedy and fixed: the two need not agree."""
    evals = {}
    for name in EPISODE_SETS:
        points = dict(m.series.get(f"eval/{name}_success", {}))
        if before and isinstance(before.get(f"{name}_success"), (int, float)) and points:
            points.setdefault(0, float(before[f"{name}_success"]))
        if points:
            evals[name] = points
    if not m.has("success_rate") and not evals:
        return None
    fig, ax = _figure("Success during stage 3", "episode success")
    if m.has("success_rate"):
        _line(ax, m.steps("success_rate"), m.values("success_rate"), "training episodes", color="C0")
    for i, (name, points) in enumerate(evals.items()):
        steps = sorted(points)
        ax.plot(steps, [points[s] for s in steps], label=EPISODE_SETS[name], marker="D", markersize=6,
                linestyle=":", linewidth=1.0, color=f"C{i + 1}")
    ax.set_ylim(-0.03, 1.03)
    _legend(ax)
    return Chart("episode_success", "Success during stage 3", _png(fig))


def _panels(m: Metrics, name: str, title: str, measures: Sequence[tuple[str, str]]) -> Chart | None:
    """One small panel per measure: their scales differ by orders of magnitude (loss vs KL)."""
    keys = [(k, label) for k, label in measures if m.has(k)][:4]
    if not keys:
        return None
    columns = 1 if len(keys) == 1 else 2
    rows = (len(keys) + 1) // 2
    fig, axes = _pyplot().subplots(rows, columns, figsize=(5.6, 1.1 + 1.9 * rows), dpi=110, squeeze=False)
    for i, (ax, (key, label)) in enumerate(zip(axes.flat, keys)):
        _style(ax, label, "", "training step" if i >= len(keys) - columns else "", title_size=9)
        _line(ax, m.steps(key), m.values(key), key, color=f"C{i + 1}")
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    fig.suptitle(title, x=0.02, ha="left", fontsize=11, fontweight="bold")
    fig.tight_layout()
    return Chart(name, title, _png(fig))


def learner_chart(m: Metrics) -> Chart | None:
    return _panels(m, "learner", "Learner", LEARNER_KEYS)


def signal_chart(m: Metrics) -> Chart | None:
    return _panels(m, "signal", "Groups with signal and replays", SIGNAL_KEYS)


def off_policy_chart(m: Metrics) -> Chart | None:
    return _panels(m, "off_policy", "Rollouts and the learner", OFF_POLICY_KEYS)


def eval_charts(m: Metrics, before: dict | None = None) -> list[Chart]:
    """Held-out accuracy and reward over training; `before` (the stage report's) is drawn at step 0."""
    charts = []
    for name, title, ylabel, keys in (("heldout_accuracy", "Held-out accuracy", "fraction", EVAL_RATES),
                                      ("heldout_reward", "Held-out stage-1 reward", "reward", EVAL_REWARDS)):
        series = {}
        for key in keys:
            points = dict(m.series.get(f"eval/{key}", {}))
            if before and isinstance(before.get(key), (int, float)) and points:
                points.setdefault(0, float(before[key]))
            if points:
                series[key] = points
        if not series:
            continue
        fig, ax = _figure(title, ylabel)
        for i, (key, points) in enumerate(series.items()):
            steps = sorted(points)
            _line(ax, steps, [points[s] for s in steps], EVAL_LABELS.get(key, key.replace("_", " ")), color=f"C{i}")
        if keys is EVAL_RATES:
            ax.set_ylim(-0.03, 1.03)
        _legend(ax)
        charts.append(Chart(name, title, _png(fig)))
    return charts


def time_parts(m: Metrics) -> tuple[list[int], dict[str, list[float]]]:
    """Step time by part, stacked: (steps, part -> seconds per step); empty when the parts were logged at
    different steps. Stage 3's parts leave out building batches and the curriculum: what time/step has beyond
    them is drawn as "other" (stages 1–2's parts add up to time/step)."""
    names = [p for p in TIME_PARTS if m.has(f"time/{p}")]
    steps = m.steps(f"time/{names[0]}") if names else []
    if not names or any(m.steps(f"time/{p}") != steps for p in names):
        return [], {}
    parts = {p: m.values(f"time/{p}") for p in names}
    if m.steps("time/step") == steps:
        rest = [max(0.0, total - sum(v)) for total, *v in zip(m.values("time/step"), *parts.values())]
        if max(rest) > 0.01 * max(m.values("time/step")):
            parts["other"] = rest
    return steps, parts


def time_chart(m: Metrics) -> Chart | None:
    steps, parts = time_parts(m)
    if not parts:
        return None
    fig, ax = _figure("Step time by part", "seconds")
    ax.stackplot(steps, *parts.values(), labels=list(parts), alpha=0.8)
    _legend(ax)
    return Chart("step_time", "Step time", _png(fig))


def training_charts(m: Metrics, before: dict | None = None) -> list[Chart]:
    """Every chart the metrics have series for. `before`: the held-out measures before training by the name
    they are logged under after eval/ (a stage 1–2 report's `before`; for stage 3, `<set>_success`)."""
    drawn = [reward_chart(m), episode_success_chart(m, before), *eval_charts(m, before), signal_chart(m),
             learner_chart(m), off_policy_chart(m), time_chart(m)]
    return [c for c in drawn if c is not None]


def running_rate_chart(name: str, title: str, outcomes: Sequence[bool], xlabel: str) -> Chart:
    """The running mean of a sequence of right/wrong outcomes (evaluation: success over episodes)."""
    fig, ax = _figure(title, "running rate", xlabel=xlabel)
    running, total = [], 0
    for i, ok in enumerate(outcomes, start=1):
        total += bool(ok)
        running.append(total / i)
    _line(ax, list(range(1, len(running) + 1)), running, "running rate", color="C2")
    ax.set_ylim(-0.03, 1.03)
    return Chart(name, title, _png(fig))


def rate_by_index_chart(name: str, title: str, rates: dict[int, tuple[int, int]], xlabel: str) -> Chart:
    """Right / judged per index (evaluation: step accuracy by step number), with the counts on the bars."""
    fig, ax = _figure(title, "fraction right", xlabel=xlabel)
    xs = sorted(rates)
    ys = [rates[x][0] / rates[x][1] for x in xs]
    bars = ax.bar(xs, ys, color="C0", alpha=0.8)
    for bar, x in zip(bars, xs):
        ax.annotate(f"{rates[x][0]}/{rates[x][1]}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=7)
    ax.set_ylim(0, 1.1)
    return Chart(name, title, _png(fig))


def interval_chart(name: str, title: str, rates: dict[str, tuple[float, Sequence[float] | None]]) -> Chart:
    """One horizontal bar per label (evaluation: success rate per task) with its interval when known."""
    plt = _pyplot()
    labels = list(rates)
    fig, ax = plt.subplots(figsize=(5.6, 0.9 + 0.32 * len(labels)), dpi=110)
    _style(ax, title, "", "rate", integer_x=False)
    values = [rates[k][0] for k in labels]
    errors = [[max(0.0, v - (rates[k][1] or (v, v))[0]) for k, v in zip(labels, values)],
              [max(0.0, (rates[k][1] or (v, v))[1] - v) for k, v in zip(labels, values)]]
    ax.barh(range(len(labels)), values, xerr=errors, color="C2", alpha=0.8, capsize=3, ecolor="#555")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    return Chart(name, title, _png(fig))
