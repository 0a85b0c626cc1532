"""The trajectories file: what an agent did, step by step, in a form a report can draw on its screenshots.

`<run_dir>/trajectories.jsonl` holds one JSON object per line (one episode, or one held-out sample):

    {"episode": str, "instruction": str, "success": bool | null,
     "steps": [{"screenshot": str | null,   # PNG, path relative to the run directory
                "plan": str,                 # the planner's raw text
                "executed": str | null,      # the executed step, formatted (canonical plan language)
                "point": [x, y] | null,      # where it acted, screenshot pixels
                "target_box": [x0, y0, x1, y1] | null,   # the label's target, screenshot pixels
                "correct": bool | null,      # whether the executed step was right (null: not judged)
                "feedback": str | null}]}    # what the environment or the grader said

Plan-act evaluation (`python -m tracer1.eval`) writes it episode by episode with `append_trajectory`; a
training run writes it from its held-out examples (`tracer1.report.examples`). `read_trajectories` checks
every field and names the file, line and field of a bad one.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRAJECTORIES_FILE = "trajectories.jsonl"


class TrajectoryError(ValueError):
    """A malformed trajectory, with the file, line and field that are wrong."""


@dataclass
class TrajectoryStep:
    """One step of an episode as the report draws it (see the module docstring for each field)."""

    plan: str
    screenshot: str | None = None
    executed: str | None = None
    point: tuple[float, float] | None = None
    target_box: tuple[float, float, float, float] | None = None
    correct: bool | None = None
    feedback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"screenshot": self.screenshot, "plan": self.plan, "executed": self.executed,
                "point": list(self.point) if self.point is not None else None,
                "target_box": list(self.target_box) if self.target_box is not None else None,
                "correct": self.correct, "feedback": self.feedback}


@dataclass
class Trajectory:
    """One episode: its instruction, whether it succeeded (None: unknown) and its steps in order."""

    episode: str
    instruction: str
    success: bool | None = None
    steps: list[TrajectoryStep] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"episode": self.episode, "instruction": self.instruction, "success": self.success,
                "steps": [s.to_dict() for s in self.steps]}

    def to_json(self) -> str:
        problems = trajectory_problems(self.to_dict())
        if problems:  # refuse to write what `read_trajectories` would refuse to read
            raise TrajectoryError(f"episode {self.episode!r}: " + "; ".join(problems))
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Any) -> Trajectory:
        problems = trajectory_problems(data)
        if problems:
            raise TrajectoryError("; ".join(problems))
        steps = [TrajectoryStep(plan=s["plan"], screenshot=s.get("screenshot"), executed=s.get("executed"),
                                point=_tuple(s.get("point")), target_box=_tuple(s.get("target_box")),
                                correct=s.get("correct"), feedback=s.get("feedback")) for s in data["steps"]]
        return cls(episode=data["episode"], instruction=data["instruction"], success=data.get("success"),
                   steps=steps)


def _tuple(value):
    return tuple(value) if value is not None else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check(value: Any, kind: str, name: str, problems: list[str], *, nullable: bool) -> None:
    if value is None:
        if not nullable:
            problems.append(f"{name} is missing or null")
        return
    if kind == "str" and not isinstance(value, str):
        problems.append(f"{name} must be a string, not {type(value).__name__}")
    elif kind == "bool" and not isinstance(value, bool):
        problems.append(f"{name} must be true, false or null, not {value!r}")
    elif kind in ("point", "box"):
        size = 2 if kind == "point" else 4
        if not (isinstance(value, list) and len(value) == size and all(_is_number(v) for v in value)):
            problems.append(f"{name} must be [{'x, y' if size == 2 else 'x0, y0, x1, y1'}] in pixels or null, "
                            f"not {value!r}")
        elif kind == "box" and not (value[0] <= value[2] and value[1] <= value[3]):
            problems.append(f"{name} {value!r} must have x0 <= x1 and y0 <= y1")


def trajectory_problems(data: Any) -> list[str]:
    """What is wrong with one decoded line (empty when it is a valid trajectory)."""
    if not isinstance(data, dict):
        return [f"a trajectory must be a JSON object, not {type(data).__name__}"]
    problems: list[str] = []
    _check(data.get("episode"), "str", "episode", problems, nullable=False)
    _check(data.get("instruction"), "str", "instruction", problems, nullable=False)
    _check(data.get("success"), "bool", "success", problems, nullable=True)
    steps = data.get("steps")
    if not isinstance(steps, list):
        return problems + [f"steps must be a list, not {type(steps).__name__}"]
    for i, step in enumerate(steps):
        where = f"steps[{i}]"
        if not isinstance(step, dict):
            problems.append(f"{where} must be an object, not {type(step).__name__}")
            continue
        _check(step.get("plan"), "str", f"{where}.plan", problems, nullable=False)
        for name in ("screenshot", "executed", "feedback"):
            _check(step.get(name), "str", f"{where}.{name}", problems, nullable=True)
        _check(step.get("point"), "point", f"{where}.point", problems, nullable=True)
        _check(step.get("target_box"), "box", f"{where}.target_box", problems, nullable=True)
        _check(step.get("correct"), "bool", f"{where}.correct", problems, nullable=True)
        if isinstance(step.get("screenshot"), str) and Path(step["screenshot"]).is_absolute():
            problems.append(f"{where}.screenshot {step['screenshot']!r} must be relative to the run directory")
    return problems


def write_trajectories(path: str | os.PathLike, trajectories: Iterable[Trajectory]) -> Path:
    """Write every trajectory to `path` atomically (temp file, then rename); -> the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [t.to_json() + "\n" for t in trajectories]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("".join(lines), encoding="utf-8")
    os.replace(tmp, path)
    return path


def append_trajectory(path: str | os.PathLike, trajectory: Trajectory) -> None:
    """Add one finished episode to `path` (one whole line per write, so a killed run leaves whole lines)."""
    line = trajectory.to_json() + "\n"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)


def read_trajectories(path: str | os.PathLike) -> list[Trajectory]:
    """Every trajectory in `path`; a bad line raises TrajectoryError naming the file, line and field."""
    path = Path(path)
    out = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                out.append(Trajectory.from_dict(json.loads(line)))
            except json.JSONDecodeError as exc:
                raise TrajectoryError(f"{path}: line {number}: not JSON ({exc.msg} at column {exc.colno})") from None
            except TrajectoryError as exc:
                raise TrajectoryError(f"{path}: line {number}: {exc}") from None
    return out
