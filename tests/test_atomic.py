"""Atomic writes: the target holds the old content or the new, and a failed write leaves no temp file behind."""

from __future__ import annotations

import json

import pytest

from tracer1.atomic import save_json_atomic, save_text_atomic


def test_text_replaces_the_old_content_in_one_step(tmp_path):
    target = tmp_path / "config.yaml"
    target.write_text("old")
    assert save_text_atomic(target, "new") == target
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "report.json"
    save_json_atomic(target, {"reward": 0.5})
    with pytest.raises(TypeError):
        save_text_atomic(target, b"not text")  # fails inside the write, after the temp file exists
    assert json.loads(target.read_text()) == {"reward": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
