"""Scaling of the rollout stage from 1 to 64 workers, with fake engines: is the controller a bottleneck?

A cluster's rollout engines cannot run here, so each worker is a fake: a Ray actor (`FakeRolloutEngine`, no CPU
reserved, so 64 fit on two cores) that sleeps a fixed `--latency` per call, as an engine busy generating would,
and returns G completions of `--tokens` token ids and log-probs per item, the payload real groups carry. Items
carry `--item-kib` of bytes each, about what a built-in world sample with its screenshot weighs. The driver is
the training loop's own `call_pool`, which splits the batch evenly over the workers, calls them all at once and
gathers the answers in order.

Weak scaling: with W workers the batch has W x `--per-worker` items, so every worker gets the same share and the
ideal wall time of a call is one latency, whatever W. efficiency = ideal / measured wall (mean over `--repeats`
calls after a warm-up call); 1.0 means the controller adds nothing, and the drop as W grows is what dispatching,
serialising and gathering cost per worker. The actors are started once (their start-up time is reported
separately) and the first W of them serve each row.

Prints a table and writes bench/results/rollout_scaling.json. Run with `make bench`, or

    python bench/rollout_scaling.py [--workers 1 2 4 8 16 32 64] [--latency 1.0] [--per-worker 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from common import run_facts, save_results  # bench/common.py (the script's folder)

OUT = Path(__file__).parent / "results" / "rollout_scaling.json"


class FakeRolloutEngine:
    """A fake rollout worker (stands in for an engine on a GPU): `rollout` sleeps `latency_s` per call and returns,
    per item, `group_size` completions of `tokens` tokens. Each completion's text names the item and the worker,
    so a caller can check which worker got what. Imports only tracer1.engines.base (no torch), so 64 of these fit
    in a small machine's memory."""

    def __init__(self, index: int, latency_s: float, group_size: int, tokens: int):
        self.index, self.latency_s, self.group_size, self.tokens = index, latency_s, group_size, tokens

    def rollout(self, items, *, seed: int = 0) -> list:
        from tracer1.engines.base import Completion

        time.sleep(self.latency_s)
        return [[Completion(prompt_index=i, text=f"{item_id} by worker {self.index}",
                            token_ids=list(range(self.tokens)), logprobs=[-1.0] * self.tokens, finish_reason="length")
                 for _ in range(self.group_size)] for i, (item_id, _payload) in enumerate(items)]

    def timed(self, method: str, *args, **kwargs):
        """`tracer1.train.actors.Timed.timed` (what call_pool calls), copied so the fake's process need not import
        that module, which pulls in torch and transformers."""
        started = time.perf_counter()
        out = getattr(self, method)(*args, **kwargs)
        return time.perf_counter() - started, out


def start_fakes(count: int, latency_s: float, group_size: int, tokens: int) -> list:
    import ray
    from ray import cloudpickle

    if __name__ != "__main__":  # imported (tests): ship the class by value, the actors cannot import this file
        cloudpickle.register_pickle_by_value(sys.modules[__name__])
    actor = ray.remote(num_cpus=0, max_restarts=0)(FakeRolloutEngine)
    fakes = [actor.remote(i, latency_s, group_size, tokens) for i in range(count)]
    ray.get([f.__ray_ready__.remote() for f in fakes])
    return fakes


def scaling_row(fakes: list, per_worker: int, item_bytes: int, latency_s: float, repeats: int) -> dict:
    """One weak-scaling row: `len(fakes)` workers, `per_worker` items each, through call_pool."""
    from tracer1.train.actors import call_pool

    workers = len(fakes)
    items = [(f"item-{i:04d}", bytes(item_bytes)) for i in range(workers * per_worker)]
    call_pool(fakes, "rollout", items, retries=0, label=lambda item: item[0])  # warm-up: first calls, imports
    walls, busy = [], []
    for seed in range(1, repeats + 1):
        started = time.perf_counter()
        out = call_pool(fakes, "rollout", items, retries=0, label=lambda item: item[0], seed=seed)
        walls.append(time.perf_counter() - started)
        busy.append(out.busy_s)
        if [group[0].text.split(" by ")[0] for group in out.results] != [item_id for item_id, _ in items]:
            raise RuntimeError(f"{workers} workers: call_pool returned the groups out of order")
    wall = statistics.fmean(walls)
    return {"workers": workers, "items": len(items), "ideal_s": latency_s, "wall_s": wall,
            "wall_min_s": min(walls), "wall_std_s": statistics.stdev(walls) if len(walls) > 1 else 0.0,
            "busy_s": statistics.fmean(busy), "overhead_s": wall - latency_s, "efficiency": latency_s / wall,
            "completions_per_call": len(items) * len(out.results[0])}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    parser.add_argument("--latency", type=float, default=1.0, help="seconds each fake engine sleeps per call")
    parser.add_argument("--per-worker", type=int, default=2, help="items (samples) per worker per call")
    parser.add_argument("--group", type=int, default=8, help="G: completions per item")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per completion")
    parser.add_argument("--item-kib", type=int, default=18, help="payload per item (a sample's screenshot)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per worker count")
    args = parser.parse_args(argv)

    import ray

    started, load_start = time.perf_counter(), os.getloadavg()[0]
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        t0 = time.perf_counter()
        fakes = start_fakes(max(args.workers), args.latency, args.group, args.tokens)
        startup_s = time.perf_counter() - t0
        rows = [scaling_row(fakes[:w], args.per_worker, args.item_kib * 1024, args.latency, args.repeats)
                for w in sorted(args.workers)]
    finally:
        ray.shutdown()
    results = {
        "engines": "FakeRolloutEngine Ray actors (num_cpus=0) sleeping a fixed latency per call",
        "latency_s": args.latency, "per_worker": args.per_worker, "group_size": args.group, "tokens": args.tokens,
        "item_bytes": args.item_kib * 1024, "repeats": args.repeats, "actors_startup_s": startup_s, "rows": rows,
        **run_facts(started, load_start, ("ray",)),
    }
    save_results(OUT, results)
    print_table(results)
    return results


def print_table(r: dict) -> None:
    print(f"rollout stage scaling through call_pool with fake engines (Ray actors sleeping {r['latency_s']:g} s per "
          f"call): {r['per_worker']} items of {r['item_bytes'] // 1024} KiB per worker, G={r['group_size']} x "
          f"{r['tokens']} tokens back per item, mean of {r['repeats']} calls ({r['cpus']} CPUs, load "
          f"{r['loadavg_start']:.1f} -> {r['loadavg_end']:.1f}; ray {r['ray']})")
    print(f"  {'workers':>7} {'items':>6} {'completions':>11} {'wall s':>14} {'overhead s':>10} {'efficiency':>10}")
    for row in r["rows"]:
        print(f"  {row['workers']:>7} {row['items']:>6} {row['completions_per_call']:>11} "
              f"{row['wall_s']:>7.3f} ± {row['wall_std_s']:<5.3f} {row['overhead_s']:>10.3f} "
              f"{row['efficiency']:>10.1%}")
    print(f"  {max(row['workers'] for row in r['rows'])} fake actors started in {r['actors_startup_s']:.1f} s; "
          f"script wall time {r['wall_s']:.0f} s")
    print(f"written to {OUT}")


if __name__ == "__main__":
    main()
