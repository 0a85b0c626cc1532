"""The main job, end to end, for one or more seeds: `python -m tracer1.pipeline [seeds=0,1,2] [key=value ...]`.

Per seed: SFT warm start (cached) → stage 1 from it → stage 2 from stage 1's checkpoint, each evaluated on the
same held-out samples before and after. Then the two claims of the method, with the spread over seeds:

    stage 1 raises the mean trajectory reward above the SFT checkpoint's   (stage-1 report: after − before)
    stage 2 raises first-step grounded accuracy above the stage-1 checkpoint's   (stage-2 report: after − before)

written to `<out_dir>/<name>/pipeline_report.json` and `.md`. `make run` is one seed; `make study` three.
Other `key=value` arguments go to both stages (e.g. `algorithm.lr=1e-4`); `stage1.X=...` / `stage2.X=...`
to one of them.
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
from tracer1.config import ConfigError, load_config
from tracer1.report.text import pipeline_text
from tracer1.run import main as run_stage

CLAIMS = (  # (name, stage whose report shows it, measure, what it says)
    ("stage1_reward_gain", 1, "reward", "stage 1 − SFT: mean trajectory reward (sampled plans)"),
    ("stage2_grounded_gain", 2, "first_step_grounded", "stage 2 − stage 1: first-step grounded accuracy"),
)


def split_args(args: Sequence[str]) -> tuple[list[int], str | None, list[str], list[str], list[str]]:
    """→ (seeds, name, overrides for both stages, for stage 1 only, for stage 2 only)."""
    seeds, name, both, one, two = [0], None, [], [], []
    for arg in args:
        key, _, value = arg.partition("=")
        if key == "seeds":
            seeds = [int(s) for s in value.split(",") if s.strip()]
        elif key == "name":
            name = value
        elif key.startswith("stage1."):
            one.append(arg.removeprefix("stage1."))
        elif key.startswith("stage2."):
            two.append(arg.removeprefix("stage2."))
        else:
            both.append(arg)
    return seeds, name, both, one, two


def spread(values: Sequence[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "values": list(values)}


def run_pipeline(args: Sequence[str]) -> int:
    seeds, name, both, one, two = split_args(args)
    try:
        out_dir = Path(load_config(both).logging.out_dir)  # validates the shared overrides before hours of work
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    name = name or f"pipeline-{datetime.now():%Y%m%d-%H%M%S}"
    started, rows = time.time(), []
    for seed in seeds:
        s1, s2 = f"{name}-seed{seed}-stage1", f"{name}-seed{seed}-stage2"
        common = [f"seed={seed}", *both]
        if run_stage(["stage=1", f"run_name={s1}", *common, *one]) != 0:
            return 1
        if run_stage(["stage=2", f"run_name={s2}", f"checkpoint.init_from={out_dir / s1}", *common, *two]) != 0:
            return 1
        reports = {stage: json.loads((out_dir / run / f"stage{stage}_report.json").read_text())
                   for stage, run in ((1, s1), (2, s2))}
        rows.append({"seed": seed, "runs": {"stage1": str(out_dir / s1), "stage2": str(out_dir / s2)},
                     "sft": reports[1]["before"], "stage1": reports[1]["after"], "stage2_before": reports[2]["before"],
                     "stage2": reports[2]["after"]})
    report = {"name": name, "seeds": seeds, "minutes": round((time.time() - started) / 60, 1),
              "overrides": {"both": both, "stage1": one, "stage2": two}, "per_seed": rows, "claims": {}}
    for claim, stage, measure, says in CLAIMS:
        before_key, after_key = ("sft", "stage1") if stage == 1 else ("stage2_before", "stage2")
        gains = [r[after_key][measure] - r[before_key][measure] for r in rows]
        report["claims"][claim] = {"says": says, "gain": spread(gains), "holds_on_every_seed": min(gains) > 0,
                                   "before": spread([r[before_key][measure] for r in rows]),
                                   "after": spread([r[after_key][measure] for r in rows])}
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
