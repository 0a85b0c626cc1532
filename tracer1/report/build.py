"""`write_report(run_dir)`: the run's report.html (self-contained) and its PNGs under report/.

What the page shows depends on what the directory holds, each section only when its input is there:

* a training run (`sft_report.json` / `stageN_report.json`, `metrics.jsonl`): before → after on the held-out
  samples, reward / held-out accuracy / learner / step-time curves, every metric's last, min and max, and the
  held-out examples drawn on their screenshots (written to trajectories.jsonl first, see `examples`);
* a stage-3 run (`stage3_report.json`, `metrics.jsonl`, `trajectories.jsonl`): plan-act success on the held-out
  episodes before → after, per set (unseen seeds of the trained families; families never trained on) with
  95% intervals and the paired gain, first decisions right, success per family (a table and an interval
  chart), the curves — training-episode success with the held-out evaluations as markers, groups with signal
  and replays, learner, step time by part (plan, env, learner, sync) — and the held-out episodes it wrote,
  drawn step by step;
* an evaluation (`eval_report.json`, `trajectories.jsonl`): its measures, success and step-accuracy curves, and
  the episodes drawn step by step;
* a pipeline (`pipeline_report.json`): the claims, the seeds table, and each stage run's curves with a link to
  its own report (built when missing).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

from tracer1.atomic import save_text_atomic
from tracer1.report import html as h
from tracer1.report.examples import STAGE_REPORTS, write_training_trajectories
from tracer1.report.plots import EPISODE_SETS, Chart, Metrics, ReportError, interval_chart, rate_by_index_chart, \
    read_metrics, running_rate_chart, training_charts
from tracer1.report.text import ROWS, pipeline_text
from tracer1.report.trajectories import TRAJECTORIES_FILE, Trajectory, TrajectoryError, read_trajectories

REPORT_FILE = "report.html"
ASSETS_DIR = "report"            # the PNGs of the page, also as files
MAX_TRAJECTORIES = 8             # drawn on the page (failures and successes alternate); the file has them all
MAX_STEPS = 8                    # steps drawn per trajectory
INPUTS = ("pipeline_report.json", "eval_report.json", *STAGE_REPORTS, "metrics.jsonl", TRAJECTORIES_FILE)


def has_results(run_dir: str | Path) -> bool:
    """Whether `run_dir` holds anything a report shows (a run that only saved its config does not)."""
    return any((Path(run_dir) / name).is_file() for name in INPUTS)


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


class Assets:
    """The PNGs of one report: saved under report/ and embedded in the page."""

    def __init__(self, run_dir: Path):
        self.dir = run_dir / ASSETS_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        for old in self.dir.glob("*.png"):  # a rebuild replaces the previous pictures
            old.unlink()

    def embed(self, name: str, png: bytes, alt: str) -> str:
        (self.dir / f"{name}.png").write_bytes(png)
        return h.image(png, alt)

    def charts(self, charts: list[Chart], prefix: str = "curve_") -> str:
        figures = [f"<figure>{self.embed(prefix + c.name, c.png, c.title)}</figure>" for c in charts]
        return f'<div class="charts">{"".join(figures)}</div>'


# --- training -----------------------------------------------------------------------------------------------

def _change(old, new) -> str:
    if old is None or new is None:
        return "<td></td>"
    arrow = "up" if new > old + 1e-9 else ("down" if new < old - 1e-9 else "")
    return f'<td class="{arrow}">{"↑" if arrow == "up" else "↓" if arrow == "down" else "="}</td>'


def before_after(report: dict) -> str:
    before, after = report.get("before") or {}, report.get("after") or {}
    rows = []
    for label, key, fmt in ROWS:
        old, new = before.get(key), after.get(key)
        if old is None and new is None:
            continue
        cells = [h.esc(label), *(h.esc(fmt.format(v)) if v is not None else "n/a" for v in (old, new))]
        rows.append([*cells, _change(old, new)])
    facts = [f"{k.replace('_', ' ')}: {h.number(report[k])}" for k in ("steps", "seconds", "train_samples",
                                                                       "eval_samples", "final_loss") if k in report]
    held = after.get("samples") or before.get("samples")
    note = f'<p class="note">{held} held-out samples; {" · ".join(facts)}</p>' if held else ""
    return h.table(["held-out measure", "before", "after", ""], rows, raw=True) + note + failing_plans(before, after)


def failing_plans(before: dict, after: dict, limit: int = 8) -> str:
    """Why sampled plans failed to parse, before and after: sampled plans with each kind of problem."""
    old, new = before.get("problem_kinds") or {}, after.get("problem_kinds") or {}
    kinds = sorted(old.keys() | new.keys(), key=lambda k: (-new.get(k, 0), -old.get(k, 0), k))[:limit]
    if not kinds:
        return ""
    rows = [[kind, str(old.get(kind, 0)), str(new.get(kind, 0))] for kind in kinds]
    return ('<p class="note">why sampled plans fail to parse: plans with each kind of problem</p>'
            + h.table(["problem", "before", "after"], rows))


# --- stage 3: plan-act episodes ------------------------------------------------------------------------------

def _percent(value, ci=None, signed: bool = False) -> str:
    """A rate (or a signed difference of rates) with its 95% interval when known."""
    if value is None:
        return "n/a"
    form = "{:+.1%}" if signed else "{:.1%}"
    return form.format(value) + (f" [{form.format(ci[0])}, {form.format(ci[1])}]" if ci else "")


def _gain_cell(gain: dict) -> str:
    """The paired gain, green or red only when its interval excludes 0 (else the sign may be noise)."""
    mean = gain.get("mean")
    arrow = "" if mean is None or not gain.get("excludes_zero") else ("up" if mean > 0 else "down")
    return f'<td class="{arrow}">{h.esc(_percent(mean, gain.get("ci95"), signed=True))}</td>'


def planact_overall(report: dict) -> str:
    """One row per held-out set: success before and after, the paired gain, and how many episodes flipped; then
    each set's first decisions right (no history yet: only the instruction and the screen say what to do)."""
    before, after, gains = report.get("before") or {}, report.get("after") or {}, report.get("paired_gain") or {}
    rows = []
    for name in after:
        old, new, gain = before.get(name) or {}, after[name], gains.get(name) or {}
        o, n = old.get("overall") or {}, new.get("overall") or {}
        rows.append([h.esc(EPISODE_SETS.get(name, name)), h.esc(_percent(o.get("success_rate"), o.get("ci95"))),
                     h.esc(_percent(n.get("success_rate"), n.get("ci95"))), _gain_cell(gain),
                     h.number(gain.get("excludes_zero")) if gain.get("mean") is not None else "n/a",
                     f"{h.number(gain.get('gained'))} / {h.number(gain.get('lost'))}"])
    for name in after:
        o, n = (before.get(name) or {}).get("first_decision") or {}, after[name].get("first_decision") or {}
        rows.append([h.esc(f"{EPISODE_SETS.get(name, name)}: first decision right"),
                     h.esc(_percent(o.get("rate"), o.get("ci95"))), h.esc(_percent(n.get("rate"), n.get("ci95"))),
                     "", "", ""])
    return ('<p class="note">plan-act success on held-out episodes, before → after (95% intervals; the gain is '
            'paired: the same episodes before and after)</p>'
            + h.table(["held-out episodes", "before", "after", "paired gain", "interval excludes 0",
                       "episodes gained / lost"], rows, raw=True))


def _family_rows(report: dict) -> list[tuple[str, str, dict, dict]]:
    """(set, family, before, after) for every family of every held-out set, trained families first."""
    before, after = report.get("before") or {}, report.get("after") or {}
    return [(name, family, ((before.get(name) or {}).get("by_family") or {}).get(family) or {}, stats)
            for name in after for family, stats in (after[name].get("by_family") or {}).items()]


def planact_families(report: dict) -> str:
    rows = []
    for name, family, old, new in _family_rows(report):
        cells = [f"{_percent(s.get('success_rate'))} ({h.number(s.get('successes'))}/{h.number(s.get('episodes'))})"
                 if s else "n/a" for s in (old, new)]
        was, now = old.get("success_rate"), new.get("success_rate")
        rows.append([h.esc(family), h.esc(EPISODE_SETS.get(name, name)), *map(h.esc, cells), _change(was, now)])
    return ('<p class="note">success by family (successes / episodes)</p>'
            + h.table(["family", "held-out set", "before", "after", ""], rows, raw=True))


def family_chart(report: dict) -> list[Chart]:
    """After-success per family with its 95% interval; families never trained on are marked."""
    rates = {(family if name == "trained" else f"{family} (held out)"):
             (new["success_rate"], new.get("ci95")) for name, family, _, new in _family_rows(report)
             if isinstance(new.get("success_rate"), (int, float))}
    return [interval_chart("family_success", "Success after stage 3 by family", rates)] if rates else []


def planact_section(report: dict) -> tuple[str, list[Chart]]:
    """Stage 3's before → after (its report's schema differs from stages 1–2: episodes, not samples)."""
    facts = [f"{k.replace('_', ' ')}: {h.number(report[k])}" for k in ("steps", "seconds") if k in report]
    families = [f"{words}: {', '.join(report.get(k) or []) or 'none'}"
                for k, words in (("trained_families", "trained families"), ("held_out_families", "held-out families"))]
    episodes = (((report.get("after") or {}).get("trained") or {}).get("overall") or {}).get("episodes")
    note = (f'<p class="note">{h.number(episodes)} episodes per set, played greedily; '
            f'{h.esc(" · ".join(facts + families))}</p>')
    return planact_overall(report) + note + planact_families(report), family_chart(report)


def eval_before(stage: dict) -> dict:
    """The held-out measures before training, by the name they are logged under after eval/ in metrics.jsonl:
    the curves draw them at step 0."""
    before = stage.get("before") or {}
    if stage.get("stage") == 3:
        return {f"{name}_success": (r.get("overall") or {}).get("success_rate") for name, r in before.items()}
    return before


def metrics_table(metrics: Metrics) -> str:
    rows = []
    for key in sorted(metrics.series):
        values = metrics.values(key)
        rows.append([key, h.number(values[-1]), h.number(min(values)), h.number(max(values)), str(len(values))])
    where = f" (logged as {metrics.prefix}/…)" if metrics.prefix else ""
    return (f'<p class="note">every scalar in metrics.jsonl{h.esc(where)}, by key</p>'
            + h.table(["metric", "last", "min", "max", "points"], rows))


# --- trajectories -------------------------------------------------------------------------------------------

def pick(trajectories: list[Trajectory], limit: int) -> list[Trajectory]:
    """Up to `limit`, failures and successes alternating (both teach), in file order within each."""
    groups = [[t for t in trajectories if t.success is False], [t for t in trajectories if t.success is True],
              [t for t in trajectories if t.success is None]]
    chosen: list[Trajectory] = []
    while len(chosen) < limit and any(groups):
        for group in groups:
            if group and len(chosen) < limit:
                chosen.append(group.pop(0))
    order = {id(t): i for i, t in enumerate(trajectories)}
    return sorted(chosen, key=lambda t: order[id(t)])


def _screenshot(run_dir: Path, relative: str | None, notes: list[str]):
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415

    if relative is None:
        return None
    path = run_dir / relative
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        notes.append(f"{path}: screenshot not readable ({exc})")
        return None


def trajectories_section(run_dir: Path, trajectories: list[Trajectory], assets: Assets, notes: list[str]) -> str:
    from tracer1.report.annotate import annotate_step  # noqa: PLC0415

    parts = []
    chosen = pick(trajectories, MAX_TRAJECTORIES)
    note = ""
    if len(chosen) < len(trajectories):
        note = (f'<p class="note">{len(chosen)} of {len(trajectories)} trajectories drawn (all are in '
                f"{TRAJECTORIES_FILE})</p>")
    for i, trajectory in enumerate(chosen):
        body = [f'<div class="traj"><h3>{h.esc(trajectory.episode)}{h.badge(trajectory.success)}</h3>'
                f'<div class="note">instruction: {h.esc(trajectory.instruction)}</div>']
        strip = []
        for j, step in enumerate(trajectory.steps[:MAX_STEPS]):
            title = f"step {j + 1} of {len(trajectory.steps)}"
            picture = annotate_step(_screenshot(run_dir, step.screenshot, notes), step, title,
                                    trajectory.instruction)
            buffer = io.BytesIO()
            picture.save(buffer, format="PNG", optimize=True)
            strip.append('<div class="step">'
                         + assets.embed(f"trajectory{i + 1}_step{j + 1}", buffer.getvalue(),
                                        f"{trajectory.episode}, {title}")
                         + f"<details><summary>{title}: the whole plan and feedback</summary>"
                           f"<pre>{h.esc(step.plan)}</pre>"
                         + (f"<pre>{h.esc(step.feedback)}</pre>" if step.feedback else "") + "</details></div>")
        body.append(f'<div class="steps">{"".join(strip)}</div>')
        if len(trajectory.steps) > MAX_STEPS:
            body.append(f'<p class="note">{len(trajectory.steps) - MAX_STEPS} more steps not drawn</p>')
        parts.append("".join(body) + "</div>")
    return f'{note}<div class="trajs">{"".join(parts)}</div>'


def trajectory_charts(trajectories: list[Trajectory]) -> list[Chart]:
    charts = []
    outcomes = [t.success for t in trajectories if t.success is not None]
    if outcomes:
        charts.append(running_rate_chart("success", f"Episode success ({sum(outcomes)}/{len(outcomes)})",
                                         outcomes, "episode"))
    by_index: dict[int, tuple[int, int]] = {}
    for t in trajectories:
        for i, step in enumerate(t.steps, start=1):
            if step.correct is not None:
                right, judged = by_index.get(i, (0, 0))
                by_index[i] = (right + step.correct, judged + 1)
    if by_index:
        charts.append(rate_by_index_chart("step_accuracy", "Step accuracy by step number", by_index, "step"))
    return charts


# --- pipeline -----------------------------------------------------------------------------------------------

def pipeline_sections(run_dir: Path, report: dict, notes: list[str]) -> list[str]:
    claims = [[c["says"], h.number(c["before"]["mean"]), h.number(c["after"]["mean"]),
               f"{c['gain']['mean']:+.3f} ± {c['gain']['std']:.3f}",
               "yes" if c["holds_on_every_seed"] else "NO"] for c in report.get("claims", {}).values()]
    out = [h.section("Claims (spread over seeds)", h.table(["claim", "before", "after", "gain", "every seed"],
                                                           claims)
                     + f"<details><summary>pipeline_report.md</summary><pre>{h.esc(pipeline_text(report))}</pre>"
                       "</details>")]
    for row in report.get("per_seed", []):
        body = []
        for stage, where in row.get("runs", {}).items():
            sub = run_dir.parent / Path(where).name  # the stage runs sit beside the pipeline's directory
            if not sub.is_dir():
                notes.append(f"seed {row.get('seed')} {stage}: {sub} is missing")
                continue
            if not (sub / REPORT_FILE).is_file():
                write_report(sub)
            link = os.path.relpath(sub / REPORT_FILE, run_dir)
            pictures = [p for p in sorted((sub / ASSETS_DIR).glob("curve_*.png"))
                        if p.stem in ("curve_reward", "curve_heldout_accuracy", "curve_episode_success")]
            pictures += sorted((sub / ASSETS_DIR).glob("trajectory*_step1.png"))[:1]
            images = "".join(f"<figure>{h.image(p.read_bytes(), p.stem)}</figure>" for p in pictures)
            body.append(f'<h3>{h.esc(stage)}: <a href="{h.esc(link)}">{h.esc(sub.name)}/{REPORT_FILE}</a></h3>'
                        f'<div class="charts">{images}</div>')
        if stages := planact_by_stage(row):
            from tracer1.report.plots import interval_chart  # noqa: PLC0415

            chart = interval_chart(f"planact_seed{row.get('seed')}", "Plan-act success on held-out episodes "
                                   "(trained families)", stages)
            body.insert(0, f'<div class="charts"><figure>{h.image(chart.png, chart.name)}</figure></div>')
        out.append(h.section(f"Seed {row.get('seed')}", "".join(body)))
    return out


def planact_by_stage(row: dict) -> dict[str, tuple]:
    """Plan-act success with its interval per stage's policy, on stage 3's episodes: the earlier policies it
    compared (SFT warm start, stage 1), stage 2 (its start) and stage 3."""
    planact = row.get("planact")
    if not planact:
        return {}
    compared = list((planact.get("compared") or {}).values())
    named = dict(zip(("SFT", "stage 1"), compared))
    named["stage 2"], named["stage 3"] = planact["before"]["trained"], planact["after"]["trained"]
    return {k: (v["overall"]["success_rate"], v["overall"]["ci95"]) for k, v in named.items()}


# --- the page -----------------------------------------------------------------------------------------------

def write_report(run_dir: str | Path) -> Path:
    """Build `<run_dir>/report.html` (and `<run_dir>/report/*.png`) from what the run directory holds."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: no such run directory")
    if not has_results(run_dir):
        raise ReportError(f"{run_dir}: nothing to report (none of {', '.join(INPUTS)})")
    assets, notes, sections = Assets(run_dir), [], []
    kind = "run"
    if (run_dir / "pipeline_report.json").is_file():
        kind = "pipeline"
        sections += pipeline_sections(run_dir, _json(run_dir / "pipeline_report.json"), notes)
    stage_file = next((run_dir / n for n in STAGE_REPORTS if (run_dir / n).is_file()), None)
    stage = _json(stage_file) if stage_file else {}
    if stage.get("stage") == 3:  # it wrote its trajectories itself (held-out episodes after training)
        kind = "training, stage 3"
        body, family = planact_section(stage)
        sections.append(h.section("Held-out episodes: before → after stage 3", body + assets.charts(family)))
    elif stage:
        kind = f"training, stage {stage.get('stage', '?')}"
        sections.append(h.section("Held-out evaluation: before → after training", before_after(stage)))
        if not (run_dir / TRAJECTORIES_FILE).is_file():
            _, note = write_training_trajectories(run_dir, stage)
            notes += [note] if note else []
    eval_charts: list[Chart] = []
    if (run_dir / "eval_report.json").is_file():
        kind = "evaluation"
        body, eval_charts = evaluation_section(_json(run_dir / "eval_report.json"))
        sections.append(h.section("Evaluation (eval_report.json)", body))
    trajectories = []
    if (run_dir / TRAJECTORIES_FILE).is_file():
        try:
            trajectories = read_trajectories(run_dir / TRAJECTORIES_FILE)
        except TrajectoryError as exc:
            raise ReportError(str(exc)) from None
    metrics = read_metrics(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").is_file() else None
    charts = training_charts(metrics, eval_before(stage)) if metrics else []
    if kind == "evaluation" or not charts:
        charts += eval_charts + trajectory_charts(trajectories)
    if charts:
        sections.append(h.section("Curves", assets.charts(charts), "curves"))
    if metrics and metrics.series:
        sections.append(h.section("Metrics", metrics_table(metrics)))
    if trajectories:
        sections.append(h.section("Trajectories: plan, executed step, grounded point and target",
                                  trajectories_section(run_dir, trajectories, assets, notes), "trajectories"))
    if (run_dir / "config.yaml").is_file():
        sections.append(h.section("Configuration", "<details><summary>config.yaml</summary>"
                                  f"<pre>{h.esc((run_dir / 'config.yaml').read_text(encoding='utf-8'))}</pre>"
                                  "</details>"))
    if notes:
        sections.append(h.section("Notes", "".join(f'<p class="note">{h.esc(n)}</p>' for n in notes)))
    path = run_dir / REPORT_FILE
    save_text_atomic(path, h.page(f"tracer1 report: {run_dir.name}", f"{kind} · {run_dir.resolve()}", sections))
    path.chmod(0o644)  # the atomic write's temp file is private; a report is for others to open too
    return path


# --- evaluation ---------------------------------------------------------------------------------------------

def _cell(value) -> str:
    if isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
        return "[" + ", ".join(h.number(v) for v in value) + "]"  # e.g. a confidence interval
    return h.number(value)


def evaluation_section(report: dict) -> tuple[str, list[Chart]]:
    """Scalars (nested ones as dotted keys) in one table; a dict of same-shaped dicts (per task) as a table of its
    own, with a success-rate chart when it has one; `settings` folded away; per-episode lists left to the
    trajectories."""
    scalars, parts, charts = {}, [], []
    for key, value in report.items():
        if key == "settings" and isinstance(value, dict):
            continue
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            columns = list(dict.fromkeys(c for v in value.values() for c in v))
            parts.append(f"<h3>{h.esc(key.replace('_', ' '))}</h3>"
                         + h.table([key, *columns], [[name, *(_cell(row.get(c)) for c in columns)]
                                                     for name, row in value.items()]))
            rated = {k: v for k, v in value.items() if isinstance(v.get("success_rate"), (int, float))}
            if rated:
                charts.append(interval_chart(f"{key}_success", f"Success rate by {key.removeprefix('by_')}",
                                             {k: (v["success_rate"], v.get("ci95")) for k, v in rated.items()}))
        elif isinstance(value, dict):
            scalars.update(_flatten(value, f"{key}."))
        elif not (isinstance(value, list) and value and isinstance(value[0], dict)):
            scalars[key] = value
    head = h.table(["measure", "value"], [[k, _cell(v)] for k, v in scalars.items()]) if scalars else ""
    settings = report.get("settings")
    folded = (f"<details><summary>settings</summary><pre>{h.esc(json.dumps(settings, indent=1))}</pre></details>"
              if isinstance(settings, dict) else "")
    return head + "".join(parts) + folded, charts


def _flatten(tree: dict, prefix: str = "") -> dict:
    """Nested measures as dotted keys; lists of records (per-episode details) are left to the trajectories."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        elif not (isinstance(value, list) and value and isinstance(value[0], dict)):
            out[f"{prefix}{key}"] = value
    return out
