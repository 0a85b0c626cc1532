"""Does generating ahead cost learning? Stage 1 synchronous against `algorithm.max_staleness` = 1, on three seeds.

From one SFT warm start (the embedded default's, seed 0, trained once and cached), stage 1 runs with the embedded
defaults for each seed (0, 1, 2: the batches, sampling and learner seeds) and each staleness setting, evaluated on
the same held-out samples every `--eval-every` steps. It reports:

* the held-out reward (sampled plans) against steps and against wall time, one line per run (report HTML);
* per seed, the final held-out reward of each setting and their paired difference, sample by sample (the same
  held-out samples: each sample's mean reward over its sampled plans), with its 95% interval; and pooled over seeds;
* the spread over seeds of the synchronous run's gain over the warm start, the yardstick "within the spread" is
  read against.

Writes bench/results/staleness_learning.json and .html. About 30–40 minutes on a quiet 2-core machine:

    python bench/staleness_learning.py [--seeds 0,1,2] [--staleness 0,1] [--eval-every 5] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

from common import RESULTS, run_facts, save_results  # bench/common.py (the script's folder)

OUT = RESULTS / "staleness_learning.json"
Z95 = 1.959964


def paired(before: dict[str, float], after: dict[str, float]) -> dict:
    """after − before over the samples both scored: mean and 95% interval (normal approximation)."""
    diffs = [after[k] - before[k] for k in after if k in before]
    if len(diffs) < 2:
        return {"samples": len(diffs), "mean": None, "ci95": None}
    mean, half = statistics.fmean(diffs), Z95 * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return {"samples": len(diffs), "mean": mean, "ci95": [mean - half, mean + half]}


def curve(run: Path) -> list[tuple[int, float, float]]:
    """(step, seconds since training began, held-out reward) at every evaluation, step 0 the one before."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "stage1/time/step" in r]
    began = steps[0]["time"] - steps[0]["stage1/time/step"]  # the end of step 1, less the step
    report = json.loads((run / "stage1_report.json").read_text())
    points = [(0, 0.0, report["before"]["reward"])]
    points += [(r["step"], r["time"] - began, r["stage1/eval/reward"]) for r in rows if "stage1/eval/reward" in r]
    return points


def charts(runs: dict) -> list:
    from tracer1.report.plots import Chart, _figure, _legend, _line, _png

    out = []
    for axis, label, name in ((0, "training step", "steps"), (1, "seconds of training (wall)", "wall")):
        fig, ax = _figure(f"Held-out stage-1 reward against {label.split(' (')[0]}", "reward (sampled plans)",
                          xlabel=label)
        for key, r in runs.items():
            xs = [p[axis] for p in r["curve"]]
            _line(ax, xs, [p[2] for p in r["curve"]], key, color=f"C{r['staleness']}",
                  linestyle=("-", "--", ":", "-.")[r["seed"] % 4])
        _legend(ax)
        out.append(Chart(f"staleness_{name}", f"held-out reward by {name}", _png(fig)))
    return out


def write_html(results: dict, path: Path) -> Path:
    from tracer1.report.html import image, page, section, table

    rows = [[f"seed {s['seed']}", *(f"{s['after'][str(k)]:+.3f}" for k in results["staleness"]),
             *(f"{s['paired'][str(k)]['mean']:+.3f} [{s['paired'][str(k)]['ci95'][0]:+.3f}, "
               f"{s['paired'][str(k)]['ci95'][1]:+.3f}]" for k in results["staleness"][1:])]
            for s in results["seeds"]]
    heads = ["", *(f"after, staleness {k}" for k in results["staleness"]),
             *(f"staleness {k} − 0, paired by sample" for k in results["staleness"][1:])]
    body = table(heads, rows) + "".join(image(c.png, c.title) for c in charts(results["runs"]))
    path.write_text(page("tracer1: learning with rollouts ahead", results["summary"], [section("Stage 1", body)]))
    return path


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--staleness", default="0,1", help="max_staleness settings; the first is the baseline")
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--out-dir", type=Path, default=Path("runs") / "staleness_learning")
    parser.add_argument("overrides", nargs="*", help="key=value settings for every run")
    args = parser.parse_args(argv)
    seeds, settings = [int(s) for s in args.seeds.split(",")], [int(k) for k in args.staleness.split(",")]

    import ray

    from tracer1.config import load_config
    from tracer1.run import main as run
    from tracer1.train.assets import start_planner

    started, load_start = time.perf_counter(), os.getloadavg()[0]
    common = [f"logging.out_dir={args.out_dir}", f"algorithm.eval_every={args.eval_every}", *args.overrides]
    warm = start_planner(load_config(["seed=0", *common]))  # one warm start: the seeds differ in RL only
    runs = {}
    for seed in seeds:
        for k in settings:
            name = f"seed{seed}-staleness{k}"
            t0 = time.perf_counter()
            try:
                if run(["stage=1", f"run_name={name}", f"seed={seed}", f"algorithm.max_staleness={k}",
                        f"checkpoint.init_from={warm}", *common]) != 0:
                    sys.exit(f"{name} failed")
            finally:
                ray.shutdown()
            report = json.loads((args.out_dir / name / "stage1_report.json").read_text())
            runs[name] = {"seed": seed, "staleness": k, "curve": curve(args.out_dir / name),
                          "before": report["before"]["reward"], "after": report["after"]["reward"],
                          "sample_rewards": report["after"]["sample_rewards"], "run_s": time.perf_counter() - t0}
    base = settings[0]
    per_seed = []
    for seed in seeds:
        of = {k: runs[f"seed{seed}-staleness{k}"] for k in settings}
        per_seed.append({"seed": seed, "after": {str(k): r["after"] for k, r in of.items()},
                         "run_s": {str(k): r["run_s"] for k, r in of.items()},
                         "paired": {str(k): paired(of[base]["sample_rewards"], of[k]["sample_rewards"])
                                    for k in settings[1:]}})
    pooled = {}
    for k in settings[1:]:
        both = [({f"{seed}/{i}": v for i, v in runs[f"seed{seed}-staleness{base}"]["sample_rewards"].items()},
                 {f"{seed}/{i}": v for i, v in runs[f"seed{seed}-staleness{k}"]["sample_rewards"].items()})
                for seed in seeds]
        pooled[str(k)] = paired({a: v for b, _ in both for a, v in b.items()},
                                {a: v for _, b in both for a, v in b.items()})
    gains = [runs[f"seed{seed}-staleness{base}"]["after"] - runs[f"seed{seed}-staleness{base}"]["before"]
             for seed in seeds]
    summary = (f"stage 1 from one SFT warm start, seeds {seeds}; baseline max_staleness {base}: gain over the warm "
               f"start {statistics.fmean(gains):+.3f} (seeds {min(gains):+.3f} .. {max(gains):+.3f}); "
               + "; ".join(f"staleness {k} − {base}, paired over {p['samples']} samples × seeds: {p['mean']:+.3f} "
                           f"[{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}]" for k, p in pooled.items()))
    results = {"seeds": per_seed, "staleness": settings, "pooled": pooled, "baseline_gains": gains,
               "summary": summary, "runs": runs, "warm_start": str(warm), "settings": common,
               **run_facts(started, load_start)}
    save_results(OUT, results)
    html = write_html(results, OUT.with_suffix(".html"))
    print(summary)
    for s in per_seed:
        print(f"  seed {s['seed']}: after " + ", ".join(f"staleness {k} {v:+.3f}" for k, v in s["after"].items())
              + "; run " + ", ".join(f"{v / 60:.1f} min" for v in s["run_s"].values()))
    print(f"written to {OUT} and {html}")
    return results


if __name__ == "__main__":
    main()
