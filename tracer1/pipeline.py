"""The main job, end to end, for one or more seeds: `python -m tracer1.pipeline [seeds=0,1,2] [key=value ...]`.

Per seed: SFT warm start (cached) → stage 1 from it → stage 2 from stage 1's checkpoint → stage 3 from stage 2's,
each evaluated before and after (stages 1–2 on the same held-out samples, stage 3 on the same held-out plan-act
episodes). Then the claims, with the spread over seeds:

    stage 1 raises the mean trajectory reward above the SFT checkpoint's   (stage-1 report: after − before)
    stage 2 raises first-step grounded accuracy above the stage-1 checkpoint's   (stage-2 report: after − before)
    stage 3 raises plan-act success above the stage-2 checkpoint's   (stage-3 report: paired gain, 95% interval)

written to `<out_dir>/<name>/pipeline_report.json` and `.md`. `make run` is one seed; `make study` three.
Other `key=value` arguments go to every stage (e.g. `algorithm.lr=1e-4`); `stage1.X=...`, `stage2.X=...` and
`stage3.X=...` to one of them (`stage3.algorithm.total_steps=10`; a key of the stage-3 config section itself,
`stage3.tasks_per_step=2`, also goes to stage 3 only). `stages=2` stops after stage 2.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from tracer1.atomic import save_json_atomic, save_text_atomic
from tracer1.config import ConfigError, RunConfig, load_config
from tracer1.report.text import pipeline_text
from tracer1.run import main as run_stage

CLAIMS = (  # (name, stage whose report shows it, measure, what it says)
    ("stage1_reward_gain", 1, "reward", "stage 1 − SFT: mean trajectory reward (sampled plans)"),
    ("stage2_grounded_gain", 2, "first_step_grounded", "stage 2 − stage 1: first-step grounded accuracy"),
)
STAGE3_SAYS = "stage 3 − stage 2: plan-act success on held-out episodes (paired)"


def split_args(args: Sequence[str]) -> tuple[list[int], str | None, list[str], dict[int, list[str]], int]:
    """→ (seeds, name, overrides for every stage, {stage: overrides for it only}, last stage to run)."""
    seeds, name, every, only, last = [0], None, [], {1: [], 2: [], 3: []}, 3
    top = set(RunConfig.model_fields)
    for arg in args:
        key, _, value = arg.partition("=")
        if key == "seeds":
            seeds = [int(s) for s in value.split(",") if s.strip()]
        elif key == "name":
            name = value
        elif key == "stages":
            last = int(value)
        elif key.startswith(("stage1.", "stage2.")):
            only[int(key[5])].append(arg.removeprefix(key[:7]))
        elif key.startswith("stage3."):  # stage3.algorithm.X → algorithm.X; stage3.tasks_per_step stays as it is
            rest = arg.removeprefix("stage3.")
            only[3].append(rest if rest.split(".", 1)[0].split("=", 1)[0] in top else arg)
        else:
            every.append(arg)
    if last not in (2, 3):
        raise ConfigError([f"stages={last}: the pipeline runs up to stage 2 or 3"])
    return seeds, name, every, only, last


def spread(values: Sequence[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "values": list(values)}


def run_pipeline(args: Sequence[str]) -> int:
    try:
        seeds, name, both, only, last = split_args(args)
        out_dir = Path(load_config(both).logging.out_dir)  # validates the shared overrides before hours of work
        for stage in range(1, last + 1):
            load_config([f"stage={stage}", *both, *only[stage]])
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    name = name or f"pipeline-{datetime.now():%Y%m%d-%H%M%S}"
    started, rows = time.time(), []
    for seed in seeds:
        runs = {stage: f"{name}-seed{seed}-stage{stage}" for stage in range(1, last + 1)}
        for stage, run in runs.items():
            start = [f"checkpoint.init_from={out_dir / runs[stage - 1]}"] if stage > 1 else []
            if stage == 3:  # plan-act success per stage: the SFT warm start and stage 1's, on stage 3's episodes
                sft = json.loads((out_dir / runs[1] / "stage1_report.json").read_text())["planner"]
                start.append(f"stage3.compare_with={json.dumps([sft, str(out_dir / runs[1])])}")  # YAML-safe
            if run_stage([f"stage={stage}", f"run_name={run}", *start, f"seed={seed}", *both, *only[stage]]) != 0:
                return 1
        reports = {stage: json.loads((out_dir / run / f"stage{stage}_report.json").read_text())
                   for stage, run in runs.items()}
        row = {"seed": seed, "runs": {f"stage{s}": str(out_dir / run) for s, run in runs.items()},
               "sft": reports[1]["before"], "stage1": reports[1]["after"], "stage2_before": reports[2]["before"],
               "stage2": reports[2]["after"]}
        if 3 in reports:
            row["planact"] = {k: reports[3].get(k, {}) for k in ("before", "after", "paired_gain", "compared")}
        rows.append(row)
    report = {"name": name, "seeds": seeds, "minutes": round((time.time() - started) / 60, 1),
              "overrides": {"every": both, **{f"stage{s}": v for s, v in only.items()}}, "per_seed": rows,
              "claims": {}}
    for claim, stage, measure, says in CLAIMS:
        before_key, after_key = ("sft", "stage1") if stage == 1 else ("stage2_before", "stage2")
        gains = [r[after_key][measure] - r[before_key][measure] for r in rows]
        report["claims"][claim] = {"says": says, "gain": spread(gains), "holds_on_every_seed": min(gains) > 0,
                                   "before": spread([r[before_key][measure] for r in rows]),
                                   "after": spread([r[after_key][measure] for r in rows])}
    if last == 3:
        gains = [r["planact"]["paired_gain"]["trained"] for r in rows]
        report["claims"]["stage3_planact_gain"] = {
            "says": STAGE3_SAYS, "gain": spread([g["mean"] for g in gains]),
            "holds_on_every_seed": all(g["ci95"] is not None and g["ci95"][0] > 0 for g in gains),
            "before": spread([r["planact"]["before"]["trained"]["overall"]["success_rate"] for r in rows]),
            "after": spread([r["planact"]["after"]["trained"]["overall"]["success_rate"] for r in rows])}
    where = out_dir / name
    where.mkdir(parents=True, exist_ok=True)
    save_json_atomic(where / "pipeline_report.json", report)
    text = pipeline_text(report)
    save_text_atomic(where / "pipeline_report.md", text)
    print(text)
    print(f"  report: {where / 'pipeline_report.json'} (and .md)")
    from tracer1.report import report_after_run  # noqa: PLC0415 — matplotlib loads only here

    if (page := report_after_run(where)) is not None:  # claims, seeds and every stage's curves on one page
        print(f"  report: {page}")
    return 0


if __name__ == "__main__":
    sys.exit(run_pipeline(sys.argv[1:]))
