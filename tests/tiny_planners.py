"""Tiny planners and samples shared by the model and engine tests (import the fixtures into a test module).

Building is cheap after the first build of a session (the tokenizer is cached per process), so each test module
may build its own copies."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch

from tracer1.data.synthetic import generate_samples
from tracer1.models.loading import load_planner
from tracer1.models.tiny import build_tiny_planner


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run faster on one thread: their matmuls are too small to split, and on a busy 2-core
    machine OpenMP's spin-waiting threads made generation 10x slower. Restored after the module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    """{"vl": path, "text": path, "text-seed1": path, "vl-seed1": path}"""
    root = tmp_path_factory.mktemp("tiny")
    return {f"{kind}{suffix}": build_tiny_planner(root / f"{kind}{suffix}", kind=kind, seed=seed)
            for kind in ("vl", "text") for seed, suffix in ((0, ""), (1, "-seed1"))}


@pytest.fixture(scope="module")
def vl_bundle(tiny_dirs):
    return load_planner(tiny_dirs["vl"])


@pytest.fixture(scope="module")
def text_bundle(tiny_dirs):
    return load_planner(tiny_dirs["text"])


@pytest.fixture(scope="module")
def samples():
    """Planning samples of two oracle episodes (screenshots, a11y texts, histories)."""
    return list(generate_samples(2, seed=3, horizon=10))


@contextmanager
def logit_hook(model, bias):
    """Run `bias(logits) -> logits` on the output layer's result while the block runs."""
    handle = model.get_output_embeddings().register_forward_hook(lambda module, args, output: bias(output.clone()))
    try:
        yield
    finally:
        handle.remove()


def scripted(model, scripts):
    """Make row r of every generate() call emit `scripts[r][k]` at step k (a +1e4 logit bias on the output
    layer), then whatever the random model likes. Lets tests drive stop strings and EOS deterministically."""
    calls = [0]

    def bias(output):
        step = calls[0]
        calls[0] += 1
        for row, script in enumerate(scripts):
            if step < len(script):
                output[row, -1, script[step]] += 1e4
        return output

    return logit_hook(model, bias)


def biased(model, token_ids, amount):
    """Add `amount` to the logits of `token_ids` at every position (the model "wants" them)."""
    ids = list(token_ids)

    def bias(output):
        output[..., ids] += amount
        return output

    return logit_hook(model, bias)
