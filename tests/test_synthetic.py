"""Planning samples from oracle episodes of the built-in world: `python -m tracer1.data.synthetic` and
`generate_samples`. One sample per step; future[0] is the step the episode then takes; labels ground it."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tracer1.data.schema import count_samples, read_samples
from tracer1.data.synthetic import episode_seed, generate_samples, main
from tracer1.plan import Step

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, name: str, *args: str) -> Path:
    out = tmp_path / name
    assert main(["--out", str(out), "--no-progress", *args]) == 0
    return out


def test_the_cli_writes_one_parquet_file_per_split_that_read_samples_loads(tmp_path):
    out = write(tmp_path, "data", "--episodes", "12", "--seed", "1", "--horizon", "5")
    samples = read_samples(out / "train.parquet")
    assert [p.name for p in out.iterdir()] == ["train.parquet"]
    assert len(samples) == count_samples(out) and len({s.episode_id for s in samples}) == 12
    for s in samples:
        assert s.source == "builtin" and s.split == "train" and 1 <= len(s.future) <= 5
        assert Image.open(io.BytesIO(s.screenshot)).size == (s.width, s.height) == (360, 640)
        assert s.a11y and s.meta["task"] and s.meta["app"]
        assert s.label.action == s.future[0].action
    assert all(s.future[-1].action in ("finish", "answer") for s in samples if len(s.future) < 5)


def test_future_zero_is_the_step_the_episode_then_takes(tmp_path):
    samples = read_samples(write(tmp_path, "data", "--episodes", "10", "--seed", "2"))
    by_episode = {}
    for s in samples:
        by_episode.setdefault(s.episode_id, []).append(s)
    for episode in by_episode.values():
        assert [s.step_index for s in episode] == list(range(len(episode)))
        for now, after in zip(episode, episode[1:]):
            assert after.history == now.history + [now.future[0]]       # future[0] was executed
            assert after.future[:len(now.future) - 1] == now.future[1:]  # the forecast held
        assert episode[-1].future == [episode[-1].future[0]] and episode[-1].future[0].action in ("finish", "answer")
        assert len(episode) == episode[0].meta["oracle_steps"]


def test_labels_ground_the_first_step(tmp_path):
    samples = read_samples(write(tmp_path, "data", "--episodes", "25", "--seed", "3"))
    seen = set()
    for s in samples:
        step, label = s.future[0], s.label
        seen.add(step.action)
        if step.target is not None:
            x1, y1, x2, y2 = label.box
            assert x1 <= label.point[0] <= x2 and y1 <= label.point[1] <= y2
            assert f'"{step.target}"' in s.a11y                           # the target is on this screen
        if step.action == "type":
            assert label.text == step.text and label.box is not None
        if step.action == "scroll":
            assert label.direction == step.direction
        if step.action == "press":
            assert label.key == step.key
        if step.action == "open_app":
            assert label.app == step.app
        if step.action == "finish":
            assert label.status == step.status
    assert {"click", "type", "finish"} <= seen


def test_the_same_seed_writes_the_same_bytes(tmp_path):
    args = ("--episodes", "6", "--seed", "7", "--horizon", "4")
    a = write(tmp_path, "a", *args) / "train.parquet"
    b = write(tmp_path, "b", *args) / "train.parquet"
    c = write(tmp_path, "c", "--episodes", "6", "--seed", "8", "--horizon", "4") / "train.parquet"
    d = write(tmp_path, "d", *args, "--split", "eval") / "eval.parquet"
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    instructions = lambda p: [s.instruction for s in read_samples(p)]  # noqa: E731
    assert instructions(a) != instructions(d)  # an eval split draws other tasks from the same seed
    assert episode_seed(7, "train", 0) != episode_seed(7, "eval", 0)


def test_generate_samples_streams_samples_at_any_screen_size():
    samples = list(generate_samples(4, seed=5, horizon=3, split="eval", width=240, height=427, tasks=["message"]))
    assert {s.meta["task"] for s in samples} == {"message"}
    assert all(s.split == "eval" and (s.width, s.height) == (240, 427) and len(s.future) <= 3 for s in samples)
    assert any(s.future[0].action == "type" for s in samples)
    assert samples[-1].future[-1] == Step("finish", status="success")
    with pytest.raises(ValueError, match="split"):
        next(generate_samples(1, split="validation"))


def test_the_module_runs_as_a_command(tmp_path):
    done = subprocess.run([sys.executable, "-m", "tracer1.data.synthetic", "--episodes", "2", "--out",
                           str(tmp_path), "--split", "test", "--no-progress"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "samples from 2 episodes" in done.stderr and count_samples(tmp_path / "test.parquet") > 2
    bad = subprocess.run([sys.executable, "-m", "tracer1.data.synthetic", "--episodes", "2", "--out",
                          str(tmp_path), "--tasks", "juggle"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown task families juggle" in bad.stderr
