"""The command line: `python -m tracer1.run [--config FILE] [key.sub=value ...] [--print-config] [--help]`.

It resolves the config, creates the run directory, saves the resolved config there as config.yaml, and hands
the run to the trainer of the requested stage (`TRAINERS`)."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from tracer1.atomic import save_text_atomic
from tracer1.config import ConfigError, RunConfig, Stage, dump_config, load_config
from tracer1.overrides import iter_fields, yaml_scalar

EXIT_OK = 0
EXIT_BAD_CONFIG = 2

USAGE = "usage: python -m tracer1.run [--config FILE] [key.sub=value ...] [--print-config] [--plan] [--help]"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        print(render_help())
        return EXIT_OK
    plan = "--plan" in args  # print where each actor would run, check it fits, and exit (tracer1.placement)
    args = [a for a in args if a != "--plan"]
    try:
        config_files, overrides, print_config = parse_args(args)
        config = load_config(overrides, config_files)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_CONFIG
    if print_config:
        sys.stdout.write(dump_config(config))
        return EXIT_OK
    if plan:
        from tracer1.placement import plan_for  # noqa: PLC0415 — Ray is imported only to ask a live cluster

        placement = plan_for(config)
        print(placement.render())
        if not placement.fits:
            print(f"tracer1: this config does not fit {placement.source}; see DOES NOT FIT above", file=sys.stderr)
        return EXIT_OK if placement.fits else EXIT_BAD_CONFIG
    try:
        config, run_dir = prepare_run_dir(config)
    except OSError as exc:  # e.g. logging.out_dir not writable: say so, without a traceback
        print(f"tracer1: cannot create the run directory under {config.logging.out_dir}: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    from tracer1.metrics import configure_logging  # noqa: PLC0415

    configure_logging(config.logging.level)
    code = TRAINERS[config.stage](config, run_dir)
    if code == EXIT_OK:  # the run's HTML report (curves, metrics, examples on their screenshots); never fails the run
        from tracer1.report import report_after_run  # noqa: PLC0415 — matplotlib loads only here

        if (report := report_after_run(run_dir)) is not None:
            print(f"  report: {report}")
    return code


def parse_args(args: Sequence[str]) -> tuple[list[Path], list[str], bool]:
    """-> (--config files in order, key=value overrides in order, whether --print-config was given)."""
    files: list[Path] = []
    overrides: list[str] = []
    print_config = False
    pending = iter(args)
    for arg in pending:
        if arg == "--print-config":
            print_config = True
        elif arg == "--config":
            path = next(pending, None)
            if path is None:
                raise ConfigError(["--config needs a file: --config FILE"], header=USAGE)
            files.append(Path(path))
        elif arg.startswith("--config="):
            files.append(Path(arg.removeprefix("--config=")))
        elif arg.startswith("-"):
            raise ConfigError([f"unknown option {arg}; settings are written key.sub=value (see --help)"],
                              header=USAGE)
        else:
            overrides.append(arg)
    return files, overrides, print_config


# --- the run directory --------------------------------------------------------------------------------------

def default_run_name(stage: Stage, now: datetime | None = None) -> str:
    prefix = "sft" if stage == "sft" else f"stage{stage}"
    return f"{prefix}-{(now or datetime.now()):%Y%m%d-%H%M%S}"


def prepare_run_dir(config: RunConfig, now: datetime | None = None) -> tuple[RunConfig, Path]:
    """Create `<out_dir>/<run_name>` and save the config there; -> (config with its final run_name, dir).

    An explicitly named run whose directory exists is resumed in place unless `checkpoint.resume=never`;
    otherwise an existing directory is never reused: the new run gets a `-2`, `-3`, ... suffix."""
    out_dir = Path(config.logging.out_dir)
    base = config.run_name or default_run_name(config.stage, now)
    resuming = config.run_name is not None and config.checkpoint.resume != "never"
    if resuming and (out_dir / base).is_dir():
        name = base
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        for n in range(1, 10_000):
            name = base if n == 1 else f"{base}-{n}"
            try:
                (out_dir / name).mkdir()  # atomic claim: two runs started together get different names
                break
            except FileExistsError:
                continue
        else:
            raise RuntimeError(f"no free run directory for {base!r} in {out_dir}")
    config = config.model_copy(deep=True)
    config.run_name = name
    run_dir = out_dir / name
    _keep_previous_config(run_dir / "config.yaml", dump_config(config))
    save_text_atomic(run_dir / "config.yaml", dump_config(config))
    return config, run_dir


def _keep_previous_config(path: Path, new_text: str) -> None:
    """A resumed run whose config changed keeps the old one as config.<n>.yaml, and says so."""
    if not path.exists() or path.read_text(encoding="utf-8") == new_text:
        return
    n = 1
    while (kept := path.with_name(f"config.{n}.yaml")).exists():
        n += 1
    os.replace(path, kept)
    print(f"tracer1: the config of {path.parent} changed since its last start; the previous one is kept "
          f"as {kept.name}", file=sys.stderr)


# --- stages ---------------------------------------------------------------------------------------------------

def _train_sft(config: RunConfig, run_dir: Path) -> int:
    from tracer1.train.sft import train_sft  # noqa: PLC0415 — torch/DeepSpeed load only when training

    return train_sft(config, run_dir)


def _train_rl(config: RunConfig, run_dir: Path) -> int:
    from tracer1.train.rl import train_rl  # noqa: PLC0415 — Ray, torch and DeepSpeed load only when training

    return train_rl(config, run_dir)


def _train_planact(config: RunConfig, run_dir: Path) -> int:
    from tracer1.train.planact import train_planact  # noqa: PLC0415 — Ray, torch and DeepSpeed load only when training

    return train_planact(config, run_dir)


# Each stage's entry point: (resolved config, run directory) -> exit code. The training loops plug in here.
TRAINERS: dict[Stage, Callable[[RunConfig, Path], int]] = {
    "sft": _train_sft,
    1: _train_rl,
    2: _train_rl,
    3: _train_planact,
}


# --- help -----------------------------------------------------------------------------------------------------

HELP_INTRO = """\
Train an anticipatory planner with two-stage RL (TraceR1).

Settings merge in this order, later ones winning:
  field defaults < --config FILE (repeatable, in order) < config=FILE < key.sub=value
Values are YAML: stage=sft  horizon=1  env.tasks=[a,b]  checkpoint.init_from=null

options:
  --config FILE    load settings from a YAML file (repeatable; configs/ has examples)
  --print-config   print the resolved config as YAML (loadable with --config) and exit
  --plan           print where each actor would run (per node and GPU) against the Ray cluster at
                   cluster.address / RAY_ADDRESS, else cluster.nodes; exit 2 if it does not fit
  -h, --help       show this help and exit

exit codes: 0 done, 2 bad config/arguments (--plan: no fit), 1 the run failed (the error says where)

settings (path: type = default  (bounds), then what it means):"""


def render_help(width: int = 96) -> str:
    lines = [USAGE, "", HELP_INTRO, "", "run"]
    for doc in iter_fields(RunConfig, leaves_first=True):
        if doc.section is not None:
            lines += ["", f"{doc.path} — {doc.description}"]
            continue
        default = yaml_scalar(doc.field.get_default(call_default_factory=True))
        head = f"{doc.path}: {doc.type_text} = {default}" + (f"  ({doc.bounds})" if doc.bounds else "")
        lines += textwrap.wrap(head, width, initial_indent="  ", subsequent_indent="        ",
                               break_on_hyphens=False)
        lines += textwrap.wrap(doc.description, width, initial_indent="      ", subsequent_indent="      ",
                               break_on_hyphens=False)
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
