"""A small run of bench/parser_fuzz.py (`make bench` runs 100,000 strings): generated bad model output through
the parser and both rewards raises nothing, the generator does make the inputs that once raised, and each of the
bench's pathological kinds parses in linear time."""

from __future__ import annotations

import importlib.util
import random
import sys
import time
from pathlib import Path

import pytest

from tracer1.plan import grammar, parse_plan

BENCH = Path(__file__).resolve().parents[1] / "bench" / "parser_fuzz.py"


def load_bench():
    sys.path.insert(0, str(BENCH.parent))  # as when it runs as a script: bench/common.py is importable
    spec = importlib.util.spec_from_file_location("parser_fuzz", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BENCH_MODULE = load_bench()


@pytest.fixture(scope="module")
def bench():
    return BENCH_MODULE


def test_generated_bad_output_raises_nothing(bench):
    result = bench.fuzz(3000, seed=1)
    assert result["exceptions"] == 0, result["first_exceptions"]
    assert result["slowest"]["seconds"] > 0


def test_the_generator_makes_the_inputs_that_once_raised(bench):
    rng = random.Random(0)
    texts = [bench.random_output(rng)[1] for _ in range(3000)]
    assert any("1e309" in t or "e99999" in t for t in texts)  # overflow to infinity
    assert any("9" * 4400 in t for t in texts)                 # past the int digit limit
    assert any("nan" in t for t in texts) and any(t.count("=") > 100 for t in texts)


# --- linear time: each pathological kind at 1 MB costs about 4x its 250 KB version, not 16x ------------------

def best_time(text: str) -> float:
    best = float("inf")
    for _ in range(5):  # the best of five: this machine may be busy
        grammar._read_line.cache_clear()
        start = time.perf_counter()
        parse_plan(text)
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize("name", BENCH_MODULE.PATHOLOGICAL)
def test_pathological_inputs_parse_in_linear_time(name):
    make = BENCH_MODULE.PATHOLOGICAL[name]
    small, big = best_time(make(250_000)), best_time(make(1_000_000))
    assert big < 8 * small + 0.02, f"{name}: {small * 1e3:.1f} ms at 250 KB, {big * 1e3:.1f} ms at 1 MB"
