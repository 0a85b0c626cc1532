"""Where an RL step's time goes, per part, in one short stage 1 and one short stage 2 on a local Ray.

Runs `tracer1.run.main` in this process twice into a temporary out_dir: stage 1 from a small SFT warm start
(trained first, cached under <out_dir>/.cache), then stage 2 from stage 1's final checkpoint, each for `--steps`
GRPO steps of the tiny default planner at a realistic step size (4 prompts x 8 plans x up to 128 new tokens; the
embedded default generates up to 256). Then it reads each run's metrics.jsonl, drops step 1 (warm-up: first
calls, lazy imports, allocator growth) and reports, per part (rollout, execute, reward, learner, sync):

* wall: `time/<part>`, the seconds the driver waited for the part;
* busy: `busy/<part>`, the seconds of work inside the part's busiest actor (the critical path; 0 for a part that
  did nothing, e.g. execute in stage 1);
* wall - busy: what the part cost beyond its work (queueing, serialisation, object transfers, Ray calls);

and the step time (`time/step`, the sum of the walls) with the orchestration overhead, step time minus the sum of
the critical-path parts (`time/overhead`), in seconds and as a share of the step (mean overhead / mean step).
Means and sample standard deviations are over the kept steps. The machine is shared in development, so the
1-minute load average before and after is recorded beside the numbers.

Prints a table and writes the same numbers to bench/results/step_time.json. Run with `make bench`, or

    python bench/step_time.py [--steps 6] [--grounding offline|online] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from common import mean_std, run_facts, save_results  # bench/common.py (the script's folder)

from tracer1.train.rl import PARTS

OUT = Path(__file__).parent / "results" / "step_time.json"
WARMUP_STEPS = 1  # step 1 is dropped
# The SFT warm start is kept small (its quality does not change the step's shape); the RL step is full size.
SMOKE = Path(__file__).parents[1] / "configs" / "smoke.yaml"  # the tests' shrunk run, then a full-size step:
SETTINGS = ["learner.grad_accum_steps=4", "rollout.prompts_per_step=4", "rollout.group_size=8",
            "rollout.max_new_tokens=128", "algorithm.eval_every=0", "checkpoint.every_steps=0"]


def run_stages(out_dir: Path, steps: int, grounding: str) -> dict[int, Path]:
    import ray

    from tracer1.run import main

    runs = {1: out_dir / "s1", 2: out_dir / "s2"}
    common = ["--config", str(SMOKE), f"logging.out_dir={out_dir}", f"algorithm.total_steps={steps}", *SETTINGS]
    try:
        if main(["stage=1", "run_name=s1", *common]) != 0:
            raise SystemExit("stage 1 failed")
        if main(["stage=2", "run_name=s2", f"env.grounding={grounding}",
                 f"checkpoint.init_from={runs[1] / 'checkpoints' / 'final'}", *common]) != 0:
            raise SystemExit("stage 2 failed")
    finally:
        ray.shutdown()
    return runs


def step_rows(run: Path, stage: int) -> list[dict]:
    """One row per step with the stage's timing keys (the last one if a step was logged twice)."""
    prefix = f"stage{stage}/"
    rows = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if f"{prefix}time/step" in row:
            rows[row["step"]] = {k.removeprefix(prefix): v for k, v in row.items() if k.startswith(prefix)}
    return [rows[s] for s in sorted(rows)]


def summarise(rows: list[dict]) -> dict:
    kept = rows[WARMUP_STEPS:]
    if not kept:
        raise SystemExit(f"only {len(rows)} steps logged: nothing left after dropping the warm-up step")
    parts = {}
    for part in PARTS:
        wall = [r[f"time/{part}"] for r in kept]
        busy = [r[f"busy/{part}"] for r in kept]
        parts[part] = {"wall_s": mean_std(wall), "busy_s": mean_std(busy),
                       "gap_s": mean_std([w - b for w, b in zip(wall, busy)])}
    step = mean_std([r["time/step"] for r in kept])
    for part in parts.values():  # share of the mean step spent in the part's critical path
        part["busy_share"] = part["busy_s"]["mean"] / step["mean"]
    busy_sum = mean_std([sum(r[f"busy/{p}"] for p in PARTS) for r in kept])
    overhead = mean_std([r["time/overhead"] for r in kept])
    return {"steps_logged": len(rows), "steps_kept": len(kept), "parts": parts, "step_s": step,
            "busy_sum_s": busy_sum, "busy_share": busy_sum["mean"] / step["mean"],
            "overhead_s": overhead, "overhead_share": overhead["mean"] / step["mean"],
            "reward_mean": statistics.fmean(r["reward_mean"] for r in kept)}



def pm(stat: dict, width: int = 15) -> str:
    return f"{stat['mean']:>7.3f} ± {stat['std']:<5.3f}".rjust(width)


def print_table(results: dict) -> None:
    print(f"RL step time on the tiny default planner, local Ray: {results['prompts_per_step']} prompts x "
          f"{results['group_size']} plans x <= {results['max_new_tokens']} new tokens per step, "
          f"{results['steps']} steps per stage, step 1 dropped ({results['cpus']} CPUs, load "
          f"{results['loadavg_start']:.1f} -> {results['loadavg_end']:.1f}; torch {results['torch']}, "
          f"ray {results['ray']})")
    print("  seconds per step, mean ± std over the kept steps; busy = work in the part's busiest actor "
          "(critical path)")
    for stage in (1, 2):
        r = results[f"stage{stage}"]
        title = "stage 1 (trajectory alignment)" if stage == 1 else \
            f"stage 2 (grounded execution, {results['grounding']})"
        print(f"  {title}: {r['steps_kept']} steps, reward mean {r['reward_mean']:+.3f}")
        print(f"    {'part':<10} {'wall':>15} {'busy':>15} {'wall - busy':>15} {'busy share':>11}")
        for part in PARTS:
            p = r["parts"][part]
            print(f"    {part:<10} {pm(p['wall_s'])} {pm(p['busy_s'])} {pm(p['gap_s'])} {p['busy_share']:>11.1%}")
        print(f"    {'step':<10} {pm(r['step_s'])} {pm(r['busy_sum_s'])} {pm(r['overhead_s'])} "
              f"{r['busy_share']:>11.1%}")
        print(f"    overhead (step - Σ busy): {r['overhead_s']['mean']:.3f} ± {r['overhead_s']['std']:.3f} s, "
              f"{r['overhead_share']:.1%} of the step")
    print(f"  script wall time {results['wall_s']:.0f} s")
    print(f"written to {OUT}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="GRPO steps per stage (step 1 is dropped)")
    parser.add_argument("--grounding", choices=("offline", "online"), default="offline",
                        help="stage 2's env.grounding (offline = the embedded default)")
    parser.add_argument("--out-dir", type=Path, help="keep the runs here instead of a temporary directory")
    args = parser.parse_args(argv)
    if args.steps <= WARMUP_STEPS:
        parser.error(f"--steps must be more than {WARMUP_STEPS}: step 1 is dropped as warm-up")

    started, load_start = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tracer1-step-time-") as tmp:
        out_dir = args.out_dir or Path(tmp)
        runs = run_stages(out_dir, args.steps, args.grounding)
        stages = {f"stage{s}": summarise(step_rows(run, s)) for s, run in runs.items()}
    settings = dict(s.split("=", 1) for s in SETTINGS)
    results = {
        "model": "tiny default planner (tiny-vl, float32), SFT warm start of 30 steps",
        "steps": args.steps, "dropped_steps": list(range(1, WARMUP_STEPS + 1)), "grounding": args.grounding,
        "prompts_per_step": int(settings["rollout.prompts_per_step"]),
        "group_size": int(settings["rollout.group_size"]),
        "max_new_tokens": int(settings["rollout.max_new_tokens"]),
        "settings": [f"--config configs/{SMOKE.name}", *SETTINGS], **stages,
        **run_facts(started, load_start),
    }
    save_results(OUT, results)
    print_table(results)
    return results


if __name__ == "__main__":
    main()
