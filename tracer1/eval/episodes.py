"""Plan-act success on held-out episodes, measured so that gains are paired: stage 3 (and the pipeline) plays the
same episodes — the same (family, seed) tasks — before and after training, and reports the difference per episode.

    specs = held_out_episodes("builtin", families, 200, tag="trained")   # unseen seeds of those families
    report = episode_report(results)                       # success (Wilson 95%), per family, first decisions
    gain = paired_difference(before, after)                # mean of after − before per episode, with its 95% CI

Seeds are hashed with an evaluation prefix (`tracer1.envs.episode.task_seed`), so they never meet the seeds
stage 3 trains on, and they do not depend on the run's seed: runs of every seed are measured on the same items.
Families take turns, so every family gets count / families episodes. Greedy play is deterministic, so the results
of a policy on a set are kept beside its weights (`cached_results`) and a next run starting from them does not
play them again.

"First decision right" is each episode's first decision on its own: no history yet, only the instruction and the
screen say what to do (a held-out *sample* taken mid-episode lets the history give the task away). In the built-in
world it is judged by the oracle (the step brought the goal closer); MiniWoB++ judges only ending steps.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from tracer1.atomic import save_json_atomic
from tracer1.envs.episode import EpisodeSpec, task_seed
from tracer1.eval.plan_act import Z95, summarize, wilson_interval

EVAL_PREFIX = "tracer1-stage3-eval"


def held_out_episodes(env: str, families: Sequence[str], count: int, tag: str,
                      keep_screenshots: int = 0) -> list[EpisodeSpec]:
    """`count` evaluation episodes over `families` (taking turns), on seeds no training draws."""
    return [EpisodeSpec(f"eval-{tag}-{i:04d}-{family}", env, family, task_seed(EVAL_PREFIX, env, family, i, 0),
                        i < keep_screenshots)
            for i in range(count) for family in [families[i % len(families)]]]


def results_file(policy: Path, specs: Sequence[EpisodeSpec], config, budget: int) -> Path:
    """Where the greedy results of the weights in `policy` on `specs` are kept, keyed by everything that shapes
    them (the episodes, the budget, the planner's prompt and sampling settings, the env and the executor)."""
    settings = config.model_dump(mode="json", include={"horizon", "env", "executor"})
    settings.update(specs=[(s.episode, s.task, s.seed) for s in specs], budget=budget,
                    max_new_tokens=config.rollout.max_new_tokens, history_len=config.rollout.history_len,
                    max_prompt_tokens=config.model.max_prompt_tokens, max_image_pixels=config.model.max_image_pixels)
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return Path(policy) / f"planact-eval-{key}.json"


def cached_results(policy: Path, specs: Sequence[EpisodeSpec], config, budget: int, play) -> list[dict]:
    """`play()`'s results for these weights and episodes, kept beside the weights (without screenshots) the first
    time and read back after."""
    path = results_file(policy, specs, config, budget)
    if path.is_file():
        return json.loads(path.read_text())["results"]
    results = play()
    save_json_atomic(path, {"results": without_screenshots(results)})
    return results


def first_decisions(results: Sequence[dict]) -> dict:
    """Share of episodes whose first decision was right, with its Wilson 95% interval (episodes whose first step
    could not be judged are left out)."""
    judged = [r["trajectory"][0]["correct"] for r in results if r["trajectory"]
              and r["trajectory"][0]["correct"] is not None]
    right = sum(judged)
    interval = wilson_interval(right, len(judged))
    return {"judged": len(judged), "right": right, "rate": right / len(judged) if judged else None,
            "ci95": list(interval) if interval else None}


def episode_report(results: Sequence[dict]) -> dict:
    """Success over all episodes and per family (`summarize`), and the first decisions on their own."""
    summary = summarize(results)
    return {"overall": summary["overall"], "by_family": {k.split("/", 1)[1]: v for k, v in summary["by_task"].items()},
            "first_decision": first_decisions(results)}


def paired_difference(before: Sequence[dict], after: Sequence[dict]) -> dict:
    """after − before in success, episode by episode (matched by episode id): the mean difference and its 95%
    interval (normal approximation: mean ± z · sd / sqrt(n); n is in the hundreds here)."""
    was = {r["episode"]: float(r["success"]) for r in before}
    diffs = [float(r["success"]) - was[r["episode"]] for r in after if r["episode"] in was]
    n = len(diffs)
    if n == 0:
        return {"episodes": 0, "mean": None, "ci95": None, "excludes_zero": False}
    mean = statistics.fmean(diffs)
    half = Z95 * statistics.stdev(diffs) / math.sqrt(n) if n > 1 else math.inf
    return {"episodes": n, "mean": mean, "ci95": [mean - half, mean + half],
            "excludes_zero": mean - half > 0 or mean + half < 0,
            "gained": sum(d > 0 for d in diffs), "lost": sum(d < 0 for d in diffs)}


def save_trajectories(directory: Path, results: Sequence[dict]) -> None:
    """`directory`/trajectories.jsonl (the schema `tracer1.report` draws) and the kept screenshots as
    `screens/<episode>/<t>.png`."""
    directory.mkdir(parents=True, exist_ok=True)
    trajectories = []
    for r in results:
        steps = []
        for t, row in enumerate(r["trajectory"]):
            row = dict(row)
            if row["screenshot"] is not None:
                path = Path("screens") / r["episode"] / f"{t:02d}.png"
                (directory / path).parent.mkdir(parents=True, exist_ok=True)
                (directory / path).write_bytes(row["screenshot"])
                row["screenshot"] = path.as_posix()
            steps.append(row)
        trajectories.append({"episode": r["episode"], "instruction": r["instruction"], "success": r["success"],
                             "steps": steps})
    _write_trajectories(directory / "trajectories.jsonl", trajectories)


def without_screenshots(results: Sequence[dict]) -> list[dict]:
    """Episode results with their screenshot bytes dropped (for JSON; `save_trajectories` keeps them as files)."""
    return [{**r, "trajectory": [{**row, "screenshot": None} for row in r["trajectory"]]} for r in results]


def _write_trajectories(path: Path, trajectories: list[dict]) -> None:
    """One JSON object per line, in the schema of the module docstring: through `tracer1.report.trajectories`
    (which checks every field) when it is there, else written here in the same form."""
    try:
        from tracer1.report.trajectories import Trajectory, write_trajectories  # noqa: PLC0415
    except ImportError:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in trajectories), encoding="utf-8")
        tmp.replace(path)
        return
    write_trajectories(path, [Trajectory.from_dict(t) for t in trajectories])
