"""The command line `python -m tracer1.run`: help, printing, errors, the run directory and stage dispatch."""

import logging
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import get_args

import pytest

from tracer1.config import RunConfig, Stage, load_config
from tracer1.overrides import iter_fields
from tracer1.run import EXIT_BAD_CONFIG, TRAINERS, main, prepare_run_dir

REPO = Path(__file__).resolve().parent.parent


def run_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir())


def test_help_lists_every_field_with_type_default_and_meaning(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m tracer1.run")
    assert "  reward.lambda_rep: float = 0.5  (value ≥ 0)\n      weight of the repetition penalty" in out
    assert "  stage: 'sft' | 1 | 2 | 3 = 1" in out
    for doc in iter_fields(RunConfig):
        assert f"{doc.path}:" in out or f"{doc.path} — " in out, doc.path
    assert max(len(line) for line in out.splitlines()) <= 100


def test_print_config_prints_the_resolved_config_and_does_nothing_else(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["--print-config", "horizon=3", "reward.gamma=0.8"]) == 0
    printed = tmp_path / "printed.yaml"
    printed.write_text(capsys.readouterr().out, encoding="utf-8")
    assert main(["--print-config", "--config", str(printed)]) == 0  # feeding it back...
    assert capsys.readouterr().out == printed.read_text(encoding="utf-8")  # ...prints the same config
    assert load_config([], [printed]) == load_config(["horizon=3", "reward.gamma=0.8"], [])
    assert not (tmp_path / "runs").exists()


def test_print_config_with_no_settings_is_configs_default_yaml(capsys):
    assert main(["--print-config"]) == 0
    assert capsys.readouterr().out == (REPO / "configs" / "default.yaml").read_text(encoding="utf-8")


def test_a_bad_config_exits_2_with_the_message_and_no_traceback(capsys):
    assert main(["stage=7", "reward.gamma=two"]) == EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert "stage = 7: Input should be 'sft', 1, 2 or 3" in err and "reward.gamma = 'two'" in err
    assert "Traceback" not in err


def test_an_unknown_option_exits_2(capsys):
    assert main(["--stage=1"]) == EXIT_BAD_CONFIG
    assert "unknown option --stage=1" in capsys.readouterr().err
    assert main(["--config"]) == EXIT_BAD_CONFIG
    assert "--config needs a file" in capsys.readouterr().err


def test_the_real_command_line_exits_2_on_a_bad_stage(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-m", "tracer1.run", "stage=7"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "stage = 7" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.fixture
def stub_trainers(monkeypatch):
    """Every stage's trainer replaced by one that records (config, run_dir) and succeeds."""
    seen = []
    for stage in list(TRAINERS):
        monkeypatch.setitem(TRAINERS, stage, lambda config, run_dir: seen.append((config, run_dir)) or 0)
    return seen


def test_a_run_saves_its_resolved_config_before_training(tmp_path, stub_trainers):
    out = tmp_path / "runs"
    assert main([f"logging.out_dir={out}", "horizon=4"]) == 0
    [run_dir] = run_dirs(out)
    assert re.fullmatch(r"stage1-\d{8}-\d{6}", run_dir.name)
    saved = load_config([], [run_dir / "config.yaml"])
    assert saved == load_config([f"logging.out_dir={out}", "horizon=4", f"run_name={run_dir.name}"], [])
    assert [p.name for p in run_dir.iterdir()] == ["config.yaml"]  # no temp file left behind
    [(config, where)] = stub_trainers
    assert where == run_dir and config == saved


def test_a_run_applies_logging_level_before_training(tmp_path, monkeypatch):
    logger = logging.getLogger("tracer1")
    monkeypatch.setattr(logger, "level", logger.level)  # restored afterwards
    seen = []
    monkeypatch.setitem(TRAINERS, 1, lambda config, run_dir: seen.append(logger.getEffectiveLevel()) or 0)
    assert main([f"logging.out_dir={tmp_path}", "logging.level=DEBUG"]) == 0
    assert main([f"logging.out_dir={tmp_path}", "logging.level=ERROR"]) == 0
    assert seen == [logging.DEBUG, logging.ERROR]


def test_every_stage_has_a_trainer_and_names_its_runs(tmp_path, stub_trainers):
    assert set(TRAINERS) == set(get_args(Stage))
    for stage, prefix in (("sft", "sft-"), ("1", "stage1-"), ("2", "stage2-")):
        assert main([f"logging.out_dir={tmp_path / stage}", f"stage={stage}"]) == 0
        assert run_dirs(tmp_path / stage)[0].name.startswith(prefix)
    assert [c.stage for c, _ in stub_trainers] == ["sft", 1, 2]


def test_a_trainer_plugs_into_the_dispatch_table(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setitem(TRAINERS, 2, lambda config, run_dir: seen.append((config, run_dir)) or 0)
    assert main([f"logging.out_dir={tmp_path}", "stage=2", "run_name=s2"]) == 0
    [(config, run_dir)] = seen
    assert config.stage == 2 and config.run_name == "s2" and run_dir == tmp_path / "s2"
    assert (run_dir / "config.yaml").is_file()


def test_a_fresh_run_never_reuses_an_existing_directory(tmp_path):
    config = load_config([f"logging.out_dir={tmp_path}", "run_name=exp", "checkpoint.resume=never"], [])
    first, first_dir = prepare_run_dir(config)
    first_text = (first_dir / "config.yaml").read_text(encoding="utf-8")
    second, second_dir = prepare_run_dir(config.model_copy(update={"horizon": 2}))
    assert (first.run_name, second.run_name) == ("exp", "exp-2")
    assert (first_dir / "config.yaml").read_text(encoding="utf-8") == first_text
    assert load_config([], [second_dir / "config.yaml"]).horizon == 2


def test_derived_names_started_in_the_same_second_do_not_collide(tmp_path):
    config = load_config([f"logging.out_dir={tmp_path}"], [])
    now = datetime(2026, 11, 24, 22, 45, 1)
    names = [prepare_run_dir(config, now)[0].run_name for _ in range(2)]
    assert names == ["stage1-20261124-224501", "stage1-20261124-224501-2"]


def test_resuming_a_named_run_reuses_its_directory_and_keeps_a_changed_config(tmp_path, capsys, stub_trainers):
    args = [f"logging.out_dir={tmp_path}", "run_name=exp"]
    assert main(args + ["horizon=5"]) == 0
    assert main(args + ["horizon=6"]) == 0  # checkpoint.resume=auto by default
    assert [p.name for p in run_dirs(tmp_path)] == ["exp"]
    assert load_config([], [tmp_path / "exp" / "config.yaml"]).horizon == 6
    assert load_config([], [tmp_path / "exp" / "config.1.yaml"]).horizon == 5
    assert "previous one is kept as config.1.yaml" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["-h"], ["stage=7", "--help"]])
def test_help_wins_over_everything_else(argv, capsys):
    assert main(argv) == 0
    assert "reward.gamma" in capsys.readouterr().out
