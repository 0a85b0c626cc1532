"""Rollout throughput of the full system against the engine alone: what Ray and the loop cost.

The same planning samples, the same sampling (G plans per sample, the loop's `RolloutWorker.sampling`, one seed
per call) and the same tiny text planner, twice:

* engine alone: `HFEngine.generate` in this process on the prompts `RolloutWorker.prompts` builds, prompts built
  beforehand and not timed;
* full system: `RolloutWorker` Ray actors (as the training loop makes them, `make_actor`) called through the
  loop's `call_pool` with the samples themselves, so the time includes what the loop pays around the engine:
  shipping the samples (screenshots included) to the actors, building the prompts there, packing the groups and
  shipping them back.

Both compute on one thread (`cluster.rollout.threads=1` for the actors; this process is set to one), so with
one worker the difference is the loop's overhead; with two workers (the machine's cores) the pool also splits
the batch. tokens/s = generated tokens (EOS included, padding not) / wall seconds. Each setting gets a warm-up
call, then `--repeats` timed calls with the same seeds on every side, interleaved call by call (a shared
machine's drifting load then slows all sides alike). One worker thus samples exactly the completions the engine
alone does (checked: `same_completions`; with more workers each samples its own shard, nothing to compare).
For the system, `busy` is the seconds inside the busiest actor (prompt building + generate) and `wall - busy`
what Ray added.

Prints a table and writes bench/results/rollout_overhead.json. Run with `make bench`, or

    python bench/rollout_overhead.py [--samples 8] [--group 8] [--tokens 64] [--repeats 2] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from common import run_facts, save_results  # bench/common.py (the script's folder)

OUT = Path(__file__).parent / "results" / "rollout_overhead.json"


def tokens(groups) -> int:
    return sum(len(c.token_ids) for g in groups for c in g)


def signature(groups) -> list:
    return [[tuple(c.token_ids) for c in g] for g in groups]


def engine_call(worker, prompts, seed: int) -> tuple[dict, list]:
    """HFEngine.generate on prebuilt prompts, with the worker's own sampling settings."""
    started = time.perf_counter()
    groups = worker.engine.generate(prompts, worker.sampling(seed=seed))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "tokens": tokens(groups), "tokens_per_s": tokens(groups) / seconds}, signature(groups)


def pool_call(actors, samples, seed: int) -> tuple[dict, list]:
    """RolloutWorker actors through call_pool, as the training loop calls them."""
    from tracer1.train.actors import call_pool

    started = time.perf_counter()
    out = call_pool(actors, "rollout", samples, retries=0, label=lambda s: s.sample_id, seed=seed)
    seconds = time.perf_counter() - started
    groups = [g.completions for g in out.results]
    return {"seconds": seconds, "busy_s": out.busy_s, "tokens": tokens(groups),
            "tokens_per_s": tokens(groups) / seconds}, signature(groups)


def measure(planner: Path, config, samples, worker_counts: list[int], repeats: int) -> tuple[dict, list[dict]]:
    """The engine alone and each pool, interleaved call by call (the same seed in turn on every side), so a
    machine whose load drifts slows all of them alike."""
    import ray

    from tracer1.models.prompt import prompts_for_run
    from tracer1.rollout import RolloutWorker
    from tracer1.train.actors import call_pool, make_actor, wait_until_placed

    local = RolloutWorker(planner, config)
    started = time.perf_counter()
    prompts = prompts_for_run(local.bundle, samples, config)
    prompt_s = time.perf_counter() - started
    local.engine.generate(prompts[:2], local.sampling(group_size=2, seed=0))  # first-call work
    pools = []
    for workers in worker_counts:
        started = time.perf_counter()
        actors = [make_actor(RolloutWorker, config.cluster.rollout, config).remote(str(planner), config)
                  for _ in range(workers)]
        wait_until_placed(actors, config)
        call_pool(actors, "rollout", samples[:2 * workers], retries=0, seed=0, group_size=2)  # first-call work
        pools.append({"workers": workers, "actors": actors, "startup_s": time.perf_counter() - started,
                      "runs": [], "same_completions": True if workers == 1 else None})
    alone = {"runs": [], "prompt_build_s": prompt_s}
    try:
        for seed in range(1, repeats + 1):
            run, expected = engine_call(local, prompts, seed)
            alone["runs"].append(run)
            for pool in pools:
                run, got = pool_call(pool["actors"], samples, seed)
                pool["runs"].append(run)
                if pool["workers"] == 1:  # the whole batch, as the engine alone had it: the same plans
                    pool["same_completions"] &= got == expected
    finally:
        for pool in pools:
            for actor in pool.pop("actors"):
                ray.kill(actor, no_restart=True)
    alone.update(summary(alone["runs"]))
    for pool in pools:
        pool.update(summary(pool["runs"]))
        pool["busy_s"] = statistics.fmean(r["busy_s"] for r in pool["runs"])
        pool["ray_gap_s"] = pool["seconds"] - pool["busy_s"]
        pool["over_engine"] = pool["tokens_per_s"] / alone["tokens_per_s"]
    return alone, pools


def summary(runs: list[dict]) -> dict:
    """Means over the timed calls (the best call is kept beside them)."""
    return {"seconds": statistics.fmean(r["seconds"] for r in runs),
            "tokens_per_call": statistics.fmean(r["tokens"] for r in runs),
            "tokens_per_s": sum(r["tokens"] for r in runs) / sum(r["seconds"] for r in runs),
            "best_tokens_per_s": max(r["tokens_per_s"] for r in runs)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=8, help="planning samples per call")
    parser.add_argument("--group", type=int, default=8, help="G: plans per sample")
    parser.add_argument("--tokens", type=int, default=64, help="max new tokens per plan")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per setting")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="rollout actor counts")
    args = parser.parse_args(argv)

    from tracer1.config import load_config  # tracer1 first: it sets the OpenMP wait policy before torch loads
    from tracer1.train.assets import load_split, planner_path

    import ray
    import torch

    torch.set_num_threads(1)  # as Ray sets it in each one-CPU actor
    started, load_start = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tracer1-rollout-overhead-") as tmp:
        config = load_config([f"logging.out_dir={tmp}", "model.kind=tiny-text", "data.generate_episodes=12",
                              f"rollout.group_size={args.group}", f"rollout.max_new_tokens={args.tokens}",
                              "cluster.rollout.threads=1"])  # one thread, as this process is set to
        planner = planner_path(config)
        samples = load_split(config, "train", args.samples)
        ray.init(num_cpus=sum(args.workers), include_dashboard=False, log_to_driver=False)
        try:
            alone, pools = measure(planner, config, samples, args.workers, args.repeats)
        finally:
            ray.shutdown()

    results = {
        "model": "tiny text planner (tracer1.models.tiny --text, random init, float32)",
        "samples": args.samples, "group_size": args.group, "max_new_tokens": args.tokens, "repeats": args.repeats,
        "sample_bytes_mean": statistics.fmean(len(s.screenshot or b"") + len(s.a11y or "") for s in samples),
        "engine_alone": alone, "system": pools,
        **run_facts(started, load_start, ("torch", "transformers", "ray")),
    }
    save_results(OUT, results)
    print_table(results)
    return results


def print_table(r: dict) -> None:
    print(f"rollout throughput, engine alone vs RolloutWorker actors through call_pool: {r['samples']} samples x "
          f"G={r['group_size']} x <= {r['max_new_tokens']} new tokens, one thread per process, mean of "
          f"{r['repeats']} calls ({r['cpus']} CPUs, load {r['loadavg_start']:.1f} -> {r['loadavg_end']:.1f}; "
          f"torch {r['torch']}, ray {r['ray']})")
    print(f"  {'setting':<28} {'tokens/s':>9} {'vs engine':>9} {'s/call':>7} {'busy':>6} {'wall-busy':>9} "
          f"{'same plans':>10}")
    a = r["engine_alone"]
    print(f"  {'HFEngine alone':<28} {a['tokens_per_s']:>9,.0f} {1:>8.2f}x {a['seconds']:>7.2f} {'':>6} {'':>9} "
          f"{'':>10}   (prompt building, untimed: {a['prompt_build_s']:.2f} s)")
    for p in r["system"]:
        title = f"{p['workers']} RolloutWorker actor{'s' if p['workers'] > 1 else ''}"
        print(f"  {title:<28} {p['tokens_per_s']:>9,.0f} {p['over_engine']:>8.2f}x {p['seconds']:>7.2f} "
              f"{p['busy_s']:>6.2f} {p['ray_gap_s']:>9.3f} {str(p['same_completions']):>10}")
    print(f"  script wall time {r['wall_s']:.0f} s")
    print(f"written to {OUT}")


if __name__ == "__main__":
    main()
