"""A small run of bench/parser_fuzz.py (`make bench` runs 100,000 strings): generated bad model output through
the parser and both rewards raises nothing, and the generator does make the inputs that once raised."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "parser_fuzz.py"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH.parent))  # as when it runs as a script: bench/common.py is importable
    spec = importlib.util.spec_from_file_location("parser_fuzz", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
