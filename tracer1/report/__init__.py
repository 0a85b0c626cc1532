"""Reports: every training run and evaluation gets a self-contained report.html (curves, the metrics table, and
trajectories drawn on their screenshots), rebuilt with `python -m tracer1.report RUN_DIR`.

    from tracer1.report import write_report
    write_report("runs/stage1-20260101-120000")      # -> runs/.../report.html (PNGs under runs/.../report/)

The trajectories file every run writes for it is defined in `tracer1.report.trajectories`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tracer1.report.build import REPORT_FILE, has_results, write_report
from tracer1.report.plots import ReportError
from tracer1.report.trajectories import (
    TRAJECTORIES_FILE,
    Trajectory,
    TrajectoryError,
    TrajectoryStep,
    append_trajectory,
    read_trajectories,
    write_trajectories,
)


def report_after_run(run_dir: str | Path) -> Path | None:
    """The report at the end of a run that produced results; a failure is printed, not raised: the run itself
    succeeded, and `python -m tracer1.report RUN_DIR` can build the report again."""
    if not has_results(run_dir):
        return None
    try:
        return write_report(run_dir)
    except Exception as exc:  # noqa: BLE001 — see the docstring
        print(f"tracer1: the report of {run_dir} failed: {type(exc).__name__}: {exc} "
              f"(rebuild it with python -m tracer1.report {run_dir})", file=sys.stderr)
        return None


__all__ = ["REPORT_FILE", "TRAJECTORIES_FILE", "ReportError", "Trajectory", "TrajectoryError", "TrajectoryStep",
           "append_trajectory", "has_results", "read_trajectories", "report_after_run", "write_report",
           "write_trajectories"]
