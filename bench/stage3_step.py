"""Where a stage-3 step's time goes: planning, executing, the environment and the learner, and how busy the
environment actors are.

Runs `tracer1.run.main` in this process: stage 3 from a small SFT warm start (the tests' shrunk one, trained
first and cached under <out_dir>/.cache), for `--steps` steps of a realistic size (4 tasks x 8 episodes, at most
12 decisions each, 16 envs on one env actor), into a temporary out_dir. Then it reads metrics.jsonl, drops step 1
(warm-up) and reports per step, mean ± std over the kept steps:

* plan: `time/plan`, the driver's wait for the rollout workers' generate calls (one per round);
* env calls: `time/env`, the driver's wait for the env actors' start/act calls, of which
  * execute: `busy/execute`, the frozen executor grounding first steps (summed over the finished episodes),
  * env step: `busy/env_step`, the envs stepping and the oracle judging progress,
  * the rest: serialisation, Ray calls, screenshots and prompts' samples built in the env actors;
* learner: `time/learner`; sync: `time/sync`; step: `time/step`;
* env utilisation: the env actors' busy time over their wall time in the episodes' phase (low: they wait for
  the planner, which is the point of pooling many envs per actor).

Prints a table and writes the same numbers to bench/results/stage3_step.json. Run with `make bench`, or

    python bench/stage3_step.py [--steps 4] [--out-dir DIR]
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

OUT = Path(__file__).parent / "results" / "stage3_step.json"
WARMUP_STEPS = 1
SMOKE = Path(__file__).parents[1] / "configs" / "smoke.yaml"
SETTINGS = ["stage=3", "stage3.tasks_per_step=4", "rollout.group_size=8", "stage3.max_decisions=12",
            "stage3.envs_per_actor=16", "stage3.eval_episodes=8", "rollout.max_new_tokens=128",
            "learner.grad_accum_steps=4", "checkpoint.every_steps=0", "algorithm.eval_every=0"]
PARTS = (("plan", "time/plan"), ("env calls", "time/env"), ("  execute", "busy/execute"),
         ("  env step", "busy/env_step"), ("learner", "time/learner"), ("sync", "time/sync"), ("step", "time/step"))


def step_rows(run: Path) -> list[dict]:
    rows = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "stage3/time/step" in row:
            rows[row["step"]] = {k.removeprefix("stage3/"): v for k, v in row.items() if k.startswith("stage3/")}
    return [rows[s] for s in sorted(rows)]


def summarise(rows: list[dict]) -> dict:
    kept = rows[WARMUP_STEPS:]
    if not kept:
        raise SystemExit(f"only {len(rows)} steps logged: nothing left after dropping the warm-up step")
    step = statistics.fmean(r["time/step"] for r in kept)
    parts = {name: {**mean_std([r[key] for r in kept]), "share": statistics.fmean(r[key] for r in kept) / step}
             for name, key in PARTS}
    return {"steps_kept": len(kept), "parts": parts,
            "env_utilisation": mean_std([r["env_utilisation"] for r in kept]),
            "decisions": mean_std([r["decisions"] for r in kept]),
            "success_rate": statistics.fmean(r["success_rate"] for r in kept)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4, help="stage-3 steps (step 1 is dropped)")
    parser.add_argument("--out-dir", type=Path, help="keep the run here instead of a temporary directory")
    args = parser.parse_args(argv)
    if args.steps <= WARMUP_STEPS:
        parser.error(f"--steps must be more than {WARMUP_STEPS}: step 1 is dropped as warm-up")
    started, load_start = time.perf_counter(), os.getloadavg()[0]
    import ray

    from tracer1.run import main as run

    with tempfile.TemporaryDirectory(prefix="tracer1-bench-") as tmp:
        out = args.out_dir or Path(tmp)
        try:
            if run(["--config", str(SMOKE), f"logging.out_dir={out}", "run_name=s3", "checkpoint.resume=never",
                    f"algorithm.total_steps={args.steps}", *SETTINGS]) != 0:
                raise SystemExit("stage 3 failed")
        finally:
            ray.shutdown()
        results = {**summarise(step_rows(out / "s3")), "steps": args.steps, "settings": SETTINGS,
                   **run_facts(started, load_start)}
    save_results(OUT, results)
    print(f"stage-3 step time, tiny planner, local Ray ({results['cpus']} CPUs, load {results['loadavg_start']:.1f}"
          f" -> {results['loadavg_end']:.1f}): {results['decisions']['mean']:.0f} decisions a step, "
          f"{results['steps_kept']} steps kept")
    print(f"  {'part':<12} {'seconds':>17} {'share':>7}")
    for name, p in results["parts"].items():
        print(f"  {name:<12} {p['mean']:>8.2f} ± {p['std']:<6.2f} {p['share']:>7.1%}")
    u = results["env_utilisation"]
    print(f"  env utilisation (busy / wall of the env actors): {u['mean']:.1%} ± {u['std']:.1%}")
    print(f"written to {OUT}")
    return results


if __name__ == "__main__":
    main()
