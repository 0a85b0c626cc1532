"""A training run's trajectories: the held-out examples its stage report keeps (`PlanningReport.examples`, before
and after training), each a one-step trajectory drawn on the sample's screenshot.

The examples hold the sample id, the greedy plan, the executed first step and its point, and the label's box
(0..1000 grid); the screenshots are read back from the run's held-out samples by sample id (the run's
config.yaml says where they are) and saved as PNGs beside trajectories.jsonl, so a later rebuild needs only
the run directory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from tracer1.report.trajectories import TRAJECTORIES_FILE, Trajectory, TrajectoryStep, write_trajectories

# The stage reports a run directory may hold, the latest stage first (stage 3's has its own schema, see build).
STAGE_REPORTS = ("stage3_report.json", "stage2_report.json", "stage1_report.json", "sft_report.json")
SCREENSHOT_DIR = "screenshots"
PHASES = (("before", "before training"), ("after", "after training"))


def _pixels(values, width: int | None, height: int | None) -> tuple[float, ...] | None:
    """0..1000 grid values (x, y, x, y, ...) as pixels of a width × height screenshot (None when unknown)."""
    if values is None or not width or not height:
        return None
    return tuple(v / 1000 * (width if i % 2 == 0 else height) for i, v in enumerate(values))


def _feedback(example: dict) -> str:
    parts = [f"reference first step: {example.get('reference_first_step')}"]
    problems = list(example.get("problems") or []) + list(example.get("execution_problems") or [])
    if problems:
        parts.append("problems: " + "; ".join(problems[:4]) + (" …" if len(problems) > 4 else ""))
    return "\n".join(parts)


def _file_name(sample_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", sample_id) + ".png"


def trajectories_from_report(report: dict, screenshots: dict[str, str]) -> list[Trajectory]:
    """One single-step trajectory per kept example, each sample's `before` then its `after` (side by side on a
    wide page). `screenshots`: sample id -> PNG path relative to the run directory (others get none)."""
    out = []
    kept = {phase: {e.get("sample_id"): e for e in (report.get(phase) or {}).get("examples") or []}
            for phase, _ in PHASES}
    for sample_id in example_ids(report):
        for phase, words in PHASES:
            example = kept[phase].get(sample_id)
            if example is None:
                continue
            width, height = example.get("width"), example.get("height")
            grounded = example.get("grounded")
            step = TrajectoryStep(plan=example.get("greedy_plan") or "", screenshot=screenshots.get(sample_id),
                                  executed=example.get("executed"),
                                  point=_pixels(example.get("point"), width, height),
                                  target_box=_pixels(example.get("target_box"), width, height),
                                  correct=grounded, feedback=_feedback(example))
            out.append(Trajectory(episode=f"{sample_id} ({words})", instruction=example.get("instruction") or "",
                                  success=grounded, steps=[step]))
    return out


def example_ids(report: dict) -> list[str]:
    ids = [e.get("sample_id") for phase, _ in PHASES for e in (report.get(phase) or {}).get("examples") or []]
    return list(dict.fromkeys(i for i in ids if i))


def read_screenshots(run_dir: Path, sample_ids: Iterable[str]) -> tuple[dict[str, bytes], str | None]:
    """PNG bytes of the wanted held-out samples, from the data the run's config names; -> (found, why not all)."""
    wanted = set(sample_ids)
    if not wanted:
        return {}, None
    try:
        from tracer1.config import load_config  # noqa: PLC0415 — pydantic config, only when examples exist
        from tracer1.data.schema import iter_samples  # noqa: PLC0415
        from tracer1.train.assets import dataset_path  # noqa: PLC0415

        config = load_config([], [run_dir / "config.yaml"])
        found = {}
        for sample in iter_samples(dataset_path(config, "eval")):
            if sample.sample_id in wanted and sample.screenshot is not None:
                found[sample.sample_id] = sample.screenshot
                if len(found) == len(wanted):
                    break
    except Exception as exc:  # noqa: BLE001 — a report without screenshots beats no report
        return {}, f"screenshots could not be read from the run's held-out data: {type(exc).__name__}: {exc}"
    missing = sorted(wanted - set(found))
    return found, (f"no screenshot for {', '.join(missing)} in the held-out data" if missing else None)


def write_training_trajectories(run_dir: Path, report: dict) -> tuple[Path | None, str | None]:
    """trajectories.jsonl (and the screenshots) from a stage report's examples; -> (its path, a note or None)."""
    ids = example_ids(report)
    if not ids:
        return None, None
    pngs, note = read_screenshots(run_dir, ids)
    relative = {}
    for sample_id, png in pngs.items():
        path = run_dir / SCREENSHOT_DIR / _file_name(sample_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        relative[sample_id] = f"{SCREENSHOT_DIR}/{path.name}"
    return write_trajectories(run_dir / TRAJECTORIES_FILE, trajectories_from_report(report, relative)), note
