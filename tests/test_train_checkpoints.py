"""Step checkpoints of the RL stages: a `step-*` directory is complete or absent, old ones are pruned, resume
finds the newest complete one, and `init_from` accepts a run, a step checkpoint or an HF directory."""

from __future__ import annotations

import pytest

from tracer1.train.checkpoints import (complete_checkpoints, policy_dir, read_state, resume_point, step_dir,
                                       write_checkpoint)


def parts(tmp):
    (tmp / "policy").mkdir()
    (tmp / "policy" / "model.safetensors").write_bytes(b"weights")
    return {"learner_rng": [{"rank": 0}]}


def test_a_checkpoint_holds_its_parts_and_state_and_old_ones_are_pruned(tmp_path):
    for step in (10, 20, 30):
        write_checkpoint(tmp_path, step, parts, {"data_cursor": step}, keep_last=2)
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["step-000020", "step-000030"]
    state = read_state(step_dir(tmp_path, 30))
    assert state == {"data_cursor": 30, "learner_rng": [{"rank": 0}], "step": 30}
    assert (step_dir(tmp_path, 30) / "policy" / "model.safetensors").read_bytes() == b"weights"


def test_a_save_that_fails_midway_leaves_no_checkpoint_and_the_previous_one_stands(tmp_path):
    write_checkpoint(tmp_path, 10, parts, {}, keep_last=2)

    def crash(tmp):
        parts(tmp)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_checkpoint(tmp_path, 20, crash, {}, keep_last=2)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-000010"]
    assert resume_point("auto", tmp_path) == step_dir(tmp_path, 10)


def test_a_directory_left_by_a_killed_save_is_not_resumed_from_and_is_cleaned_up(tmp_path):
    write_checkpoint(tmp_path, 10, parts, {}, keep_last=2)
    half = tmp_path / "checkpoints" / ".step-000020.tmp"  # what SIGKILL during a save leaves
    half.mkdir()
    (tmp_path / "checkpoints" / "step-000030").mkdir()  # a step directory without its state file is not complete
    assert resume_point("auto", tmp_path) == step_dir(tmp_path, 10)
    write_checkpoint(tmp_path, 20, parts, {}, keep_last=5)
    assert not half.exists() and resume_point("auto", tmp_path) == step_dir(tmp_path, 20)


def test_resume_points(tmp_path):
    assert resume_point("auto", tmp_path) is None  # a fresh run
    write_checkpoint(tmp_path, 5, parts, {}, keep_last=2)
    assert resume_point("never", tmp_path) is None
    assert resume_point(str(step_dir(tmp_path, 5)), tmp_path / "elsewhere") == step_dir(tmp_path, 5)
    with pytest.raises(ValueError, match=r"checkpoint.resume=.*not a complete checkpoint.*step-NNNNNN"):
        resume_point(str(tmp_path), tmp_path)


def test_init_from_accepts_a_run_a_step_checkpoint_or_an_hf_directory(tmp_path):
    run = tmp_path / "run"
    write_checkpoint(run, 5, parts, {}, keep_last=2)
    assert policy_dir(run) == step_dir(run, 5) / "policy"  # a run still going: its newest checkpoint
    assert policy_dir(step_dir(run, 5)) == step_dir(run, 5) / "policy"
    (run / "checkpoints" / "final").mkdir()
    assert policy_dir(run) == run / "checkpoints" / "final"  # a finished run: its final policy
    assert policy_dir(tmp_path / "hf-model") == tmp_path / "hf-model"
