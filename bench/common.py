"""What every benchmark records beside its numbers (the machine, its load, the versions, the wall time), and how
it writes them: `bench/results/<name>.json`, the same numbers the script prints."""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import platform
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def versions(packages=("torch", "transformers", "deepspeed", "ray")) -> dict:
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def run_facts(started: float, load_start: float, packages=("torch", "transformers", "deepspeed", "ray")) -> dict:
    """`started`: `time.perf_counter()` and `load_start`: the 1-minute load average, both taken at the start."""
    return {"wall_s": time.perf_counter() - started, "loadavg_start": load_start,
            "loadavg_end": os.getloadavg()[0], "cpus": os.cpu_count(), "machine": platform.machine(),
            **versions(packages)}


def save_results(path: Path, results: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def mean_std(values: list[float]) -> dict:
    """Mean and sample standard deviation (0 for a single value)."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}
