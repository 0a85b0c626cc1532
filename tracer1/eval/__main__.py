"""`python -m tracer1.eval checkpoint=PATH [--config FILE] [key.sub=value ...]`: plan-act evaluation in a live env.

    python -m tracer1.eval checkpoint=runs/stage2-x env=builtin episodes=50
    python -m tracer1.eval checkpoint=runs/stage2-x env=miniwob suite=click compare=reactive
    python -m tracer1.eval checkpoint=oracle env=miniwob tasks=[click-button,enter-text]     # the ceiling

The planner plays `episodes` episodes (the model-predictive loop of `tracer1.eval.plan_act`) on
`rollout.num_workers` Ray actors, and the evaluation writes, under `<logging.out_dir>/<name>/`:

* `eval_report.json` — the settings, success rate with its Wilson 95% interval, steps per success and loop share
  over all episodes and per task, and one row per episode;
* `trajectories.jsonl` — one line per episode: `{"episode", "instruction", "success", "steps": [{"screenshot"
  (PNG path relative to the directory, for the first `keep_screenshots` episodes, else null), "plan",
  "executed", "point" [x, y] px, "target_box" [x0, y0, x1, y1] px, "correct", "feedback"}]}`;
* `screens/<episode>/<t>.png`.

With `compare=reactive` the same episodes are played at `horizon` (`anticipatory/`) and at horizon 1
(`reactive/`), each directory as above, plus `comparison.json`, and the two are printed side by side.
`--print-config` prints the resolved settings as YAML (loadable with --config); exit codes: 0 done, 2 bad settings.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import yaml

from tracer1.atomic import save_json_atomic
from tracer1.config import ConfigError
from tracer1.eval.config import ORACLE, EvalConfig, episode_specs, load_eval_config
from tracer1.eval.episodes import save_trajectories
from tracer1.eval.plan_act import EvalWorker, summarize
from tracer1.run import parse_args

USAGE = "usage: python -m tracer1.eval checkpoint=PATH|oracle [--config FILE] [key.sub=value ...] [--print-config]"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        print(USAGE + "\n\n" + (__doc__ or "") + "\nsettings:\n" + _settings_help())
        return 0
    try:
        files, overrides, print_config = parse_args(args)
        config = load_eval_config(overrides, files)
        if print_config:
            print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), end="")  # loadable by --config
            return 0
        specs = episode_specs(config)
        policy = None if config.checkpoint == ORACLE else str(_policy(config.checkpoint))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    started = time.time()
    variants = {"anticipatory": config.horizon, "reactive": 1} if config.compare == "reactive" else \
        {None: config.horizon}
    results = play(config, policy, specs, list(variants.values()))
    out = Path(config.logging.out_dir) / (config.name or f"eval-{config.env.name}-{datetime.now():%Y%m%d-%H%M%S}")
    summaries = {}
    for (label, horizon), runs in zip(variants.items(), results):
        directory = out / label if label else out
        summaries[label or "plan-act"] = write_outputs(directory, config, policy, horizon, runs)
    seconds = time.time() - started
    if config.compare == "reactive":
        save_json_atomic(out / "comparison.json", {k: {"horizon": v, **summaries[k]} for k, v in variants.items()})
    print(summary_table(config, policy, variants, summaries, out, seconds))
    return 0


def _policy(checkpoint: str) -> Path:
    from tracer1.train.checkpoints import policy_dir  # noqa: PLC0415

    path = policy_dir(checkpoint)
    if not (path / "config.json").is_file():
        raise ConfigError([f"checkpoint={checkpoint}: no planner there ({path} has no config.json); give a run "
                           "directory, a step checkpoint, an HF directory or 'oracle'"])
    return path


def _settings_help() -> str:
    from tracer1.overrides import iter_fields  # noqa: PLC0415

    return "\n".join(f"  {doc.path}: {doc.description}" for doc in iter_fields(EvalConfig) if doc.section is None)


# --- playing ------------------------------------------------------------------------------------------------

def play(config: EvalConfig, policy: str | None, specs: list, horizons: list[int]) -> list[list[dict]]:
    """The episodes' results at each horizon: in this process (`use_ray=false`), else on `rollout.num_workers`
    Ray actors, each with an even share of the episodes (a call whose actor died is retried on it, restarted)."""
    if not config.use_ray:
        worker = EvalWorker(config, policy)
        try:
            return [worker.run(specs, h) for h in horizons]
        finally:
            worker.close()
    import ray  # noqa: PLC0415

    from tracer1.config import RunConfig  # noqa: PLC0415
    from tracer1.train.actors import call_pool, make_actor, ray_session, wait_until_placed  # noqa: PLC0415

    workers = min(config.rollout.num_workers, len(specs))
    # ray_session sizes a local Ray by the run's actors; eval actors are rollout workers with envs.
    sizing = RunConfig(rollout=config.rollout.model_copy(update={"num_workers": workers}), cluster=config.cluster,
                       executor=config.executor)
    with ray_session(sizing) as owned:
        actors = [make_actor(EvalWorker, config.cluster.rollout, config).remote(config, policy)
                  for _ in range(workers)]
        owned += actors
        wait_until_placed(actors, sizing)
        try:
            return [call_pool(actors, "run", specs, retries=config.cluster.max_task_retries,
                              label=lambda s: s.episode, horizon=h).results for h in horizons]
        finally:  # browsers are the actors' children: close them before the actors are killed
            ray.wait([a.close.remote() for a in actors], num_returns=len(actors), timeout=60)


# --- writing --------------------------------------------------------------------------------------------------

def write_outputs(directory: Path, config: EvalConfig, policy: str | None, horizon: int, results: list[dict]) -> dict:
    """Screenshots, trajectories.jsonl and eval_report.json in `directory`; returns the summary."""
    save_trajectories(directory, results)
    summary = summarize(results)
    settings = {**config.model_dump(mode="json"), "horizon": horizon, "policy": policy}
    rows = [{k: v for k, v in r.items() if k != "trajectory"} for r in results]
    save_json_atomic(directory / "eval_report.json", {"settings": settings, **summary, "episodes": rows})
    if config.html_report:
        try:  # the HTML report, when the report package is there (it prints its own failure, never raises)
            from tracer1.report import report_after_run  # noqa: PLC0415
        except ImportError:
            pass
        else:
            report_after_run(directory)
    return summary


# --- the summary ----------------------------------------------------------------------------------------------

def _cells(stats: dict) -> str:
    rate = f"{stats['success_rate']:.1%}" if stats["success_rate"] is not None else "-"
    ci = f"[{stats['ci95'][0]:.0%}, {stats['ci95'][1]:.0%}]" if stats["ci95"] else "-"
    sps = f"{stats['steps_per_success']:.1f}" if stats["steps_per_success"] is not None else "-"
    loops = f"{stats['loop_share']:.0%}" if stats["loop_share"] is not None else "-"
    return f"{rate:>7} {ci:>12} {sps:>6} {loops:>6}"


def summary_table(config: EvalConfig, policy: str | None, variants: dict, summaries: dict, out: Path,
                  seconds: float) -> str:
    """One screen: per task (and all), success rate, 95% interval, steps per success, loop share; with a
    comparison, one column block per horizon."""
    labels = list(summaries)
    heads = [f"{lab} (T={h})" for lab, h in zip(labels, variants.values())]
    first = summaries[labels[0]]
    lines = ["", f"== plan-act evaluation: {policy or 'oracle'} on {config.env.name}, {first['overall']['episodes']} "
                 f"episodes, budget {config.env.max_steps} steps, done in {seconds / 60:.1f} min ==",
             f"  {'':<28}" + " | ".join(f"{h:^34}" for h in heads),
             f"  {'task':<28}" + " | ".join(f"{'success':>7} {'95% CI':>12} {'steps':>6} {'loops':>6}" for _ in heads)]
    names = ["overall", *first["by_task"]][:18]  # one screen
    for name in names:
        cells = [(s["overall"] if name == "overall" else s["by_task"][name]) for s in summaries.values()]
        lines.append(f"  {(name if name == 'overall' else name.split('/', 1)[1])[:27]:<28}"
                     + " | ".join(_cells(c) for c in cells))
    lines.append("  (steps: decisions per successful episode; loops: episodes that repeated an action on the "
                 "same screen)")
    lines.append(f"  output: {out}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
