"""Where metrics go: JSON lines and TensorBoard in the run directory always (as configured), Weights & Biases
and MLflow when asked. One `MetricsLogger` per run; every stage logs through it.

    with MetricsLogger(run_dir, config.logging, config=config) as log:
        log.log({"loss": 0.7, "reward/mean": 0.31}, step=12)

`configure_logging(config.logging.level)` sets the level of tracer1's Python log messages (the run's driver and
each actor call it at start).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def configure_logging(level: str) -> None:
    """`logging.level` for tracer1's log messages (`logging.getLogger(__name__)` in its modules): the `tracer1`
    logger's level, and a console handler on the root logger if the process has none yet."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # no-op if handlers exist
    logging.getLogger("tracer1").setLevel(level)


def _plain(value: Any) -> float | None:
    """A metric as a float, or None for what is not a finite number (it is dropped, not crashed on)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class MetricsLogger:
    """Scalar metrics per step to every configured sink. Sinks that fail to start are reported once and left
    out (a missing wandb must not lose a training run)."""

    def __init__(self, run_dir: str | Path, logging_cfg, *, config: Any = None, prefix: str = ""):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.warnings: list[str] = []
        self._jsonl = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") if logging_cfg.jsonl_metrics \
            else None
        self._tb = None
        if logging_cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 — heavy import, only when used

            self._tb = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))
        self._wandb = self._start_wandb(logging_cfg, config)
        self._mlflow = self._start_mlflow(logging_cfg, config)

    def _start_wandb(self, cfg, config):
        if not cfg.wandb_project:
            return None
        try:
            import wandb  # noqa: PLC0415

            return wandb.init(project=cfg.wandb_project, name=self.run_dir.name, dir=str(self.run_dir),
                              config=config.model_dump(mode="json") if config is not None else None)
        except Exception as exc:  # noqa: BLE001 — any failure to start a remote sink only loses that sink
            self.warnings.append(f"wandb is off: {exc} (pip install -e '.[logging]')")
            return None

    def _start_mlflow(self, cfg, config):
        if not cfg.mlflow_tracking_uri:
            return None
        try:
            import mlflow  # noqa: PLC0415

            mlflow.set_tracking_uri(cfg.mlflow_tracking_uri)
            run = mlflow.start_run(run_name=self.run_dir.name)
            if config is not None:
                flat = _flatten(config.model_dump(mode="json"))
                mlflow.log_params({k: str(v)[:500] for k, v in flat.items()})
            return run
        except Exception as exc:  # noqa: BLE001
            self.warnings.append(f"MLflow is off: {exc} (pip install -e '.[logging]')")
            return None

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        values = {f"{self.prefix}{k}": v for k, v in ((k, _plain(v)) for k, v in metrics.items()) if v is not None}
        if self._jsonl is not None:
            self._jsonl.write(json.dumps({"step": step, "time": round(time.time(), 3), **values}) + "\n")
            self._jsonl.flush()
        if self._tb is not None:
            for key, value in values.items():
                self._tb.add_scalar(key, value, step)
        if self._wandb is not None:
            self._wandb.log(values, step=step)
        if self._mlflow is not None:
            import mlflow  # noqa: PLC0415

            mlflow.log_metrics({k.replace("@", "_at_"): v for k, v in values.items()}, step=step)

    def log_text(self, tag: str, text: str, step: int) -> None:
        """Sampled plans and the like: TensorBoard's text tab (and the JSON lines as a record)."""
        if self._tb is not None:
            self._tb.add_text(f"{self.prefix}{tag}", f"```\n{text}\n```", step)
        if self._jsonl is not None:
            self._jsonl.write(json.dumps({"step": step, "text": {f"{self.prefix}{tag}": text}}) + "\n")
            self._jsonl.flush()

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
        if self._mlflow is not None:
            import mlflow  # noqa: PLC0415

            mlflow.end_run()
            self._mlflow = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
