"""Metrics reach the JSON lines and TensorBoard; non-numbers are dropped, not crashed on; a sink that cannot
start (wandb not installed) is reported and left out."""

from __future__ import annotations

import json
import logging

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tracer1.config import LoggingConfig
from tracer1.metrics import MetricsLogger, configure_logging


@pytest.fixture
def tracer1_logger_level():
    logger = logging.getLogger("tracer1")
    kept = logger.level
    yield logger
    logger.setLevel(kept)


def test_logging_level_decides_which_messages_of_tracer1_modules_get_through(caplog, tracer1_logger_level):
    module_log = logging.getLogger("tracer1.executors.live")  # a module logger, as tracer1's modules make them
    configure_logging("WARNING")
    module_log.info("info at WARNING")
    module_log.warning("warning at WARNING")
    configure_logging("DEBUG")
    module_log.debug("debug at DEBUG")
    assert [r.getMessage() for r in caplog.records] == ["warning at WARNING", "debug at DEBUG"]


def test_metrics_go_to_jsonl_and_tensorboard(tmp_path):
    with MetricsLogger(tmp_path, LoggingConfig(), prefix="sft/") as log:
        log.log({"loss": 1.5, "note": "not a number", "nan": float("nan")}, step=1)
        log.log({"loss": 0.5}, step=2)
        log.log_text("sample", "<plan>\n1. wait()\n</plan>", step=2)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("sft/loss") for r in rows[:2]] == [1.5, 0.5]
    assert "sft/note" not in rows[0] and "sft/nan" not in rows[0]
    assert rows[2]["text"]["sft/sample"].startswith("<plan>")
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("sft/loss")] == [(1, 1.5), (2, 0.5)]


def test_sinks_can_be_turned_off_and_missing_ones_are_reported(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_wandb(name, *args, **kwargs):
        if name == "wandb":
            raise ImportError("No module named 'wandb'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    cfg = LoggingConfig(jsonl_metrics=False, tensorboard=False, wandb_project="p")
    with MetricsLogger(tmp_path, cfg) as log:
        log.log({"loss": 1.0}, step=1)
        assert log.warnings and "wandb is off" in log.warnings[0]
    assert list(tmp_path.iterdir()) == []
