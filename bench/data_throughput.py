"""How fast the built-in world's sample generator writes planning samples, and how fast the Parquet reader
streams them back, on one core.

* generate: `generate_samples` (oracle episodes, rendering, PNG encoding, the T-step future simulated per
  sample), then the same through `SampleWriter` into Parquet, as `python -m tracer1.data.synthetic` does;
* read: `iter_batches` over the written file (every row validated, steps parsed), counting how many images
  are decoded on the way: none (screenshots stay PNG bytes until a worker calls `Sample.image()`).

Prints the rates and writes bench/results/data.json. Run with `python bench/data_throughput.py [episodes]`.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

from PIL import Image

from tracer1.data.schema import SampleWriter, count_samples, iter_batches
from tracer1.data.synthetic import generate_samples

EPISODES = 300
HORIZON = 10
READ_PASSES = 5
GOAL_SAMPLES_PER_MIN = 1000


def main(episodes: int = EPISODES) -> dict:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the goal states
    sum(1 for _ in generate_samples(10, seed=999, horizon=HORIZON))  # warm-up: imports, font and text caches

    start = time.perf_counter()
    generated = sum(1 for _ in generate_samples(episodes, seed=0, horizon=HORIZON))
    generate_s = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.parquet"
        start = time.perf_counter()
        with SampleWriter(path) as writer:
            written = writer.write_all(generate_samples(episodes, seed=0, horizon=HORIZON))
        write_s = time.perf_counter() - start
        size = path.stat().st_size
        assert count_samples(path) == written == generated

        opened = []
        real_open = Image.open

        def counting_open(*args, **kwargs):
            opened.append(args[0] if args else None)
            return real_open(*args, **kwargs)

        with mock.patch.object(Image, "open", counting_open):
            start = time.perf_counter()
            read = 0
            for _ in range(READ_PASSES):
                for batch in iter_batches(path, batch_size=256):
                    read += len(batch)
            read_s = time.perf_counter() - start
        assert read == READ_PASSES * written

    results = {
        "episodes": episodes, "samples": generated, "horizon": HORIZON, "screen": "360x640",
        "goal_samples_per_min": GOAL_SAMPLES_PER_MIN,
        "generate_samples_per_s": generated / generate_s,
        "generate_samples_per_min": generated / generate_s * 60,
        "generate_and_write_samples_per_min": written / write_s * 60,
        "parquet_bytes_per_sample": size / written,
        "read_samples_per_s": read / read_s,
        "read_images_decoded": len(opened),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    out = Path(__file__).parent / "results" / "data.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"built-in world samples on one core: {episodes} oracle episodes, {generated} samples, "
          f"horizon {HORIZON}, 360x640 PNG screenshots (goal >= {GOAL_SAMPLES_PER_MIN:,} samples/min)")
    print(f"  generate               {results['generate_samples_per_min']:>10,.0f} samples/min "
          f"({results['generate_samples_per_s']:,.0f}/s)")
    print(f"  generate + Parquet     {results['generate_and_write_samples_per_min']:>10,.0f} samples/min "
          f"({results['parquet_bytes_per_sample'] / 1024:.1f} KiB per sample on disk)")
    print(f"  read (iter_batches)    {results['read_samples_per_s']:>10,.0f} samples/s, "
          f"{results['read_images_decoded']} images decoded")
    print(f"written to {out}")
    return results


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else EPISODES)
