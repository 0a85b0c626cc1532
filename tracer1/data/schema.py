"""The planning sample: one Arrow schema (stored as Parquet) for every sample, whatever its source.

A sample is one decision point of an episode: the instruction, what the agent sees (a PNG screenshot and/or
accessibility/DOM text), the steps already executed, the reference future of up to T steps (the first is the
step to execute now), and grounding labels for that first step. Steps are stored as canonical plan-language
text (`format_step`), so every reader speaks the plan language. Screenshots stay PNG bytes until a worker
decodes them: reading 10,000 samples decodes no image.

`SampleWriter` writes samples atomically (temp file, then rename); `iter_samples` / `iter_batches` stream
Parquet files in batches and validate every row, naming the file and row of a bad one.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tracer1.plan import ACTIONS, GRID, Step, format_step, parse_step
from tracer1.rewards import GroundingLabel

SPLITS = ("train", "eval", "test")

LABEL_TYPE = pa.struct([
    ("action", pa.string()),
    ("box", pa.list_(pa.int32(), 4)),
    ("point", pa.list_(pa.int32(), 2)),
    ("text", pa.string()),
    ("direction", pa.string()),
    ("key", pa.string()),
    ("app", pa.string()),
    ("status", pa.string()),
    ("tool", pa.string()),
    ("answers", pa.string()),  # GTA gt_answer as JSON (whitelist/blacklist dict or list of strings)
])

SCHEMA = pa.schema([
    pa.field("sample_id", pa.string(), nullable=False),
    pa.field("episode_id", pa.string(), nullable=False),
    pa.field("step_index", pa.int32(), nullable=False),
    pa.field("source", pa.string(), nullable=False),       # builtin, miniwob, toolbox, androidcontrol, ...
    pa.field("instruction", pa.string(), nullable=False),
    pa.field("screenshot", pa.binary()),                    # PNG bytes, or null for text-only observations
    pa.field("width", pa.int32()),                          # screenshot size in pixels
    pa.field("height", pa.int32()),
    pa.field("a11y", pa.string()),                          # the observation as text: accessibility tree,
                                                            # DOM, or (tool use) the tool outputs so far
    pa.field("history", pa.list_(pa.string()), nullable=False),  # executed steps, canonical, oldest first
    pa.field("future", pa.list_(pa.string()), nullable=False),   # reference steps from now on, canonical
    pa.field("label", LABEL_TYPE),                          # grounding of future[0]
    pa.field("split", pa.string(), nullable=False),
    pa.field("meta", pa.string()),                          # JSON: source-specific extras (task, app, ...)
])


class SampleError(ValueError):
    """A bad sample, with where it came from (file and row) when it was read from disk."""


@dataclass
class Sample:
    """One planning sample. Steps are `Step`s here and canonical text on disk."""

    sample_id: str
    episode_id: str
    step_index: int
    source: str
    instruction: str
    history: list[Step]
    future: list[Step]
    label: GroundingLabel | None = None
    screenshot: bytes | None = None
    width: int | None = None
    height: int | None = None
    a11y: str | None = None
    split: str = "train"
    meta: dict[str, Any] = field(default_factory=dict)

    def image(self):
        """The screenshot decoded as a PIL image (decoding happens only here)."""
        from PIL import Image

        if self.screenshot is None:
            return None
        return Image.open(io.BytesIO(self.screenshot))

    def problems(self) -> list[str]:
        """What is wrong with this sample (empty when it is valid)."""
        found = []
        if not self.sample_id:
            found.append("sample_id is empty")
        if not self.instruction or not self.instruction.strip():
            found.append("instruction is empty")
        if self.step_index < 0:
            found.append(f"step_index {self.step_index} is negative")
        if self.split not in SPLITS:
            found.append(f"split {self.split!r} is not one of {', '.join(SPLITS)}")
        if not self.future:
            found.append("future has no step (the step to take now is future[0])")
        if self.screenshot is not None:
            if not self.screenshot.startswith(b"\x89PNG\r\n\x1a\n"):
                found.append("screenshot is not PNG bytes")
            if not (self.width and self.height and self.width > 0 and self.height > 0):
                found.append(f"screenshot size {self.width}x{self.height} is not positive")
        if self.label is not None:
            found += [f"label: {p}" for p in label_problems(self.label)]
            if self.future and self.label.action != self.future[0].action:
                found.append(f"label action {self.label.action!r} is not future[0]'s {self.future[0].action!r}")
        return found


def label_problems(label: GroundingLabel) -> list[str]:
    found = []
    if label.action not in ACTIONS:
        found.append(f"unknown action {label.action!r}")
    if label.box is not None:
        x1, y1, x2, y2 = label.box
        if not (0 <= x1 <= x2 <= GRID and 0 <= y1 <= y2 <= GRID):
            found.append(f"box {tuple(label.box)} is not (x1, y1, x2, y2) within 0..{GRID}")
    if label.point is not None and not all(0 <= v <= GRID for v in label.point):
        found.append(f"point {tuple(label.point)} is outside 0..{GRID}")
    return found


# --- rows <-> samples -----------------------------------------------------------------------------------------

def to_row(sample: Sample) -> dict[str, Any]:
    label = sample.label
    return {
        "sample_id": sample.sample_id, "episode_id": sample.episode_id, "step_index": sample.step_index,
        "source": sample.source, "instruction": sample.instruction, "screenshot": sample.screenshot,
        "width": sample.width, "height": sample.height, "a11y": sample.a11y,
        "history": [format_step(s) for s in sample.history], "future": [format_step(s) for s in sample.future],
        "label": None if label is None else {
            "action": label.action, "box": list(label.box) if label.box is not None else None,
            "point": list(label.point) if label.point is not None else None, "text": label.text,
            "direction": label.direction, "key": label.key, "app": label.app, "status": label.status,
            "tool": label.tool, "answers": None if label.answers is None else json.dumps(label.answers),
        },
        "split": sample.split, "meta": json.dumps(sample.meta) if sample.meta else None,
    }


def _steps(texts: Sequence[str], column: str) -> list[Step]:
    steps = []
    for i, text in enumerate(texts):
        step, rest, problems = parse_step(text, where=f"{column}[{i}]")
        if step is None or rest.strip() or problems:
            raise SampleError("; ".join(problems) or f"{column}[{i}]: {text!r} is not one canonical step")
        steps.append(step)
    return steps


def from_row(row: dict[str, Any]) -> Sample:
    """A sample from a Parquet row (a dict); raises SampleError saying what is wrong."""
    label = row.get("label")
    try:
        sample = Sample(
            sample_id=row["sample_id"], episode_id=row["episode_id"], step_index=row["step_index"],
            source=row["source"], instruction=row["instruction"], history=_steps(row["history"] or [], "history"),
            future=_steps(row["future"] or [], "future"),
            label=None if label is None else GroundingLabel(
                action=label["action"], box=tuple(label["box"]) if label["box"] is not None else None,
                point=tuple(label["point"]) if label["point"] is not None else None, text=label["text"],
                direction=label["direction"], key=label["key"], app=label["app"], status=label["status"],
                tool=label["tool"], answers=None if label["answers"] is None else json.loads(label["answers"])),
            screenshot=row.get("screenshot"), width=row.get("width"), height=row.get("height"),
            a11y=row.get("a11y"), split=row["split"], meta=json.loads(row["meta"]) if row.get("meta") else {},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SampleError(str(exc) if isinstance(exc, SampleError) else f"{type(exc).__name__}: {exc}") from None
    problems = sample.problems()
    if problems:
        raise SampleError("; ".join(problems))
    return sample


# --- writing --------------------------------------------------------------------------------------------------

class SampleWriter:
    """Writes samples to one Parquet file, `rows_per_group` at a time; the file appears only when closed
    (written as a temp file, then renamed). Invalid samples are refused with the reason.

        with SampleWriter("data/train.parquet") as writer:
            writer.write(sample)
    """

    def __init__(self, path: str | os.PathLike, rows_per_group: int = 512):
        self.path = Path(path)
        self.rows_per_group = rows_per_group
        self.count = 0
        self._pending: list[dict] = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._writer = pq.ParquetWriter(self._tmp, SCHEMA, compression="zstd")

    def write(self, sample: Sample) -> None:
        problems = sample.problems()
        if problems:
            raise SampleError(f"sample {sample.sample_id!r}: " + "; ".join(problems))
        self._pending.append(to_row(sample))
        self.count += 1
        if len(self._pending) >= self.rows_per_group:
            self._flush()

    def write_all(self, samples: Iterable[Sample]) -> int:
        for sample in samples:
            self.write(sample)
        return self.count

    def _flush(self) -> None:
        if self._pending:
            self._writer.write_table(pa.Table.from_pylist(self._pending, schema=SCHEMA))
            self._pending = []

    def close(self) -> None:
        self._flush()
        self._writer.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._writer.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> SampleWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.abort() if exc_type else self.close()


def write_samples(path: str | os.PathLike, samples: Iterable[Sample]) -> int:
    """Write all `samples` to `path` atomically; returns how many were written."""
    with SampleWriter(path) as writer:
        return writer.write_all(samples)


# --- reading --------------------------------------------------------------------------------------------------

def parquet_files(path: str | os.PathLike) -> list[Path]:
    """The Parquet files at `path`: the file itself, or every *.parquet under a directory (sorted)."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.rglob("*.parquet") if not p.name.startswith("."))
    if not path.exists():
        raise FileNotFoundError(f"no samples at {path}")
    return [path]


def iter_batches(path: str | os.PathLike, batch_size: int = 256, split: str | None = None,
                 skip_invalid: bool = False, errors: list[str] | None = None) -> Iterator[list[Sample]]:
    """Stream samples in batches of up to `batch_size`, file by file, never holding a whole file in memory.

    A bad row raises SampleError naming the file and row; with `skip_invalid` it is skipped instead and its
    message appended to `errors` (when given)."""
    for file in parquet_files(path):
        try:
            parquet = pq.ParquetFile(file)
        except (OSError, pa.ArrowInvalid) as exc:
            raise SampleError(f"{file}: not a readable Parquet file ({exc})") from None
        yield from parquet_batches(parquet, str(file), batch_size, split, skip_invalid, errors)


def parquet_batches(parquet: pq.ParquetFile, name: str, batch_size: int = 256, split: str | None = None,
                    skip_invalid: bool = False, errors: list[str] | None = None) -> Iterator[list[Sample]]:
    """The samples of one open Parquet file (`name`: its path or URI, for messages), a record batch at a time;
    the rules of `iter_batches`."""
    missing = [column for column in SCHEMA.names if column not in parquet.schema_arrow.names]
    if missing:
        raise SampleError(f"{name}: not a tracer1 sample file (missing columns {', '.join(missing)})")
    row = 0
    for record_batch in parquet.iter_batches(batch_size=batch_size):
        batch = []
        for values in record_batch.to_pylist():
            try:
                sample = from_row(values)
                if split is None or sample.split == split:
                    batch.append(sample)
            except SampleError as exc:
                message = f"{name}: row {row}: {exc}"
                if not skip_invalid:
                    raise SampleError(message) from None
                if errors is not None:
                    errors.append(message)
            row += 1
        if batch:
            yield batch


def iter_samples(path: str | os.PathLike, **kwargs) -> Iterator[Sample]:
    for batch in iter_batches(path, **kwargs):
        yield from batch


def read_samples(path: str | os.PathLike, **kwargs) -> list[Sample]:
    return list(iter_samples(path, **kwargs))


def count_samples(path: str | os.PathLike) -> int:
    """Rows in the Parquet files at `path`, from their footers (nothing is read or decoded)."""
    return sum(pq.ParquetFile(f).metadata.num_rows for f in parquet_files(path))
