"""How long a step checkpoint holds the training loop: written in place (`checkpoint.async_write: false`) against
written asynchronously (true: each rank writes to `checkpoint.local_dir`, then copies to the run directory on a
thread while training goes on), measured in one run on the same learner.

One real learner rank in this process — `LearnerWorker` around the tiny default planner (tiny-vl, the default
config), DeepSpeed on gloo, after one GRPO step so the optimizer state exists — saves through `CheckpointWriter`
as the loops do. The stall is `CheckpointWriter.stall_s`, the seconds `save` blocks the loop; for the asynchronous
writes the background copy's time until the checkpoint is complete is reported beside it (the writer is drained
before the next measurement, so copies never overlap a timed save). Three ways, alternated `--repeats` times:

* sync: policy/ and deepspeed/ written into the run directory (`--out-dir`, on disk);
* async, local on the same disk: the node-local directory on the run directory's filesystem (the design's cost
  when local and shared storage are one disk: the same bytes written once in the loop, then copied);
* async, local in RAM (/dev/shm), standing in for a node's NVMe in front of slower shared storage.

On a cluster the shared storage (EFS/FSx over the network, ~100 GB a checkpoint) is far slower than local NVMe;
here the run directory is the machine's local disk and the checkpoint a few MB, so fixed costs (DeepSpeed's save
path, the policy export) dominate and the ratio says little about a GPU cluster. Prints a table and writes
bench/results/checkpoint_stall.json.

    python bench/checkpoint_stall.py [--repeats 5] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import run_facts, save_results  # bench/common.py (the script's folder)

OUT = Path(__file__).parent / "results" / "checkpoint_stall.json"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out-dir", default=None, help="where the runs are written (default: a temp dir)")
    args = parser.parse_args(argv)
    started, load_start = time.perf_counter(), os.getloadavg()[0]

    import torch  # noqa: PLC0415 — after argparse, so --help is quick

    from tracer1.config import CheckpointConfig, RunConfig  # noqa: PLC0415
    from tracer1.engines.base import Prompt  # noqa: PLC0415
    from tracer1.learner.worker import LearnerWorker  # noqa: PLC0415
    from tracer1.models.inputs import encode_for_training, tokenize_target  # noqa: PLC0415
    from tracer1.models.tiny import build_tiny_planner  # noqa: PLC0415
    from tracer1.train.checkpoints import CheckpointWriter  # noqa: PLC0415

    torch.set_num_threads(1)
    root = Path(args.out_dir or tempfile.mkdtemp(prefix="tracer1-ckpt-bench-"))
    ram = Path(tempfile.mkdtemp(prefix="tracer1-ckpt-bench-", dir="/dev/shm"))
    try:
        config = RunConfig.model_validate({"learner": {"backend": "gloo", "grad_accum_steps": 1}})
        worker = LearnerWorker(build_tiny_planner(root / "planner", kind="vl", seed=0), config)
        plans = ('<plan>\n1. click(target="Wi-Fi")\n</plan>', '<plan>\n1. press(key="home")\n</plan>')
        batch = encode_for_training(worker.bundle, [Prompt(text="Task: turn on Wi-Fi.")] * 2,
                                    [tokenize_target(worker.bundle, p) for p in plans])
        batch["advantages"], batch["loss_denominator"] = torch.tensor([1.0, -1.0]), batch["completion_mask"].sum()
        worker.step([batch])

        def parts(tmp, local):
            return {"learner_rng": [worker.save_checkpoint(tmp, local)]}

        ways = {"sync": CheckpointConfig(keep_last=1),
                "async, local on the same disk": CheckpointConfig(keep_last=1, async_write=True,
                                                                  local_dir=str(root / "local")),
                "async, local in RAM": CheckpointConfig(keep_last=1, async_write=True, local_dir=str(ram))}
        writers = {name: CheckpointWriter(root / f"run-{i}", c, copied=worker.checkpoint_copied)
                   for i, (name, c) in enumerate(ways.items())}
        stalls = {name: [] for name in ways}
        complete = {name: [] for name in ways}
        for step in range(1, args.repeats + 2):  # the first round is a warm-up, not kept
            for name, writer in writers.items():
                t0 = time.perf_counter()
                writer.save(step, parts, {})
                writer.wait()  # drained before the next timed save (sync: nothing in flight)
                if step > 1:
                    stalls[name].append(writer.stall_s)
                    complete[name].append(time.perf_counter() - t0)
        size = sum(f.stat().st_size for f in (root / "run-0" / "checkpoints").rglob("*") if f.is_file())
    finally:
        shutil.rmtree(ram, ignore_errors=True)
        if args.out_dir is None:
            shutil.rmtree(root, ignore_errors=True)

    sync = statistics.median(stalls["sync"])  # medians: a shared machine's load spikes skew means
    rows = {name: {"stall_median_s": statistics.median(s), "stall_mean_s": statistics.mean(s),
                   "stall_std_s": statistics.stdev(s) if len(s) > 1 else 0.0,
                   "complete_median_s": statistics.median(complete[name]),
                   "stall_vs_sync": statistics.median(s) / sync} for name, s in stalls.items()}
    results = {"repeats": args.repeats, "checkpoint_mb": size / 2**20, "ways": rows,
               **run_facts(started, load_start)}
    print(f"checkpoint of the tiny default planner ({size / 2**20:.1f} MB), median of {args.repeats} saves "
          f"(mean ± sd beside it):")
    print(f"  {'way':32s} {'loop stall (s)':>26s} {'until complete (s)':>19s} {'stall / sync':>13s}")
    for name, row in rows.items():
        print(f"  {name:32s} {row['stall_median_s']:8.3f} ({row['stall_mean_s']:.3f} ± {row['stall_std_s']:.3f}) "
              f"{row['complete_median_s']:19.3f} {row['stall_vs_sync']:13.2f}")
    print(f"  (load average {load_start:.1f} → {os.getloadavg()[0]:.1f}; written to {save_results(OUT, results)})")
    return results


if __name__ == "__main__":
    main()
