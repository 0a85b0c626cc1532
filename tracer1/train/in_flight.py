"""The batches in flight at a checkpoint (`algorithm.max_staleness` ≥ 1), kept with it so a resumed run takes them
instead of generating them: they came from weights older than the checkpoint's, which no longer exist.

    <checkpoint>/in_flight/step-NNNNNN/
        samples.parquet     the step's planning samples (tracer1's sample format)
        groups.json         per sample: its id, prompt ids, weights version and completions (ids, log-probs, text)
        images.safetensors  the prompts' image patches, where the planner is a VLM

No pickle: JSON, Parquet and safetensors only, so reading a checkpoint never runs code.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from tracer1.data.schema import read_samples, write_samples
from tracer1.engines import Completion
from tracer1.models.inputs import EncodedPrompt
from tracer1.rollout import Group
from tracer1.train.actors import Answers
from tracer1.train.ahead import Batch

IN_FLIGHT = "in_flight"


def save_in_flight(checkpoint: Path, batches: list[Batch]) -> None:
    for batch in batches:
        where = Path(checkpoint) / IN_FLIGHT / f"step-{batch.step:06d}"
        where.mkdir(parents=True)
        write_samples(where / "samples.parquet", batch.samples)
        images, groups = {}, []
        for i, g in enumerate(batch.answers.results):
            if g.prompt.pixel_values is not None:
                images[f"{i}.pixel_values"] = g.prompt.pixel_values.contiguous()
                images[f"{i}.image_grid_thw"] = g.prompt.image_grid_thw.contiguous()
            groups.append({"sample_id": g.sample_id, "input_ids": list(g.prompt.input_ids),
                           "weights_version": g.weights_version, "completions": [c.__dict__ for c in g.completions]})
        if images:
            save_file(images, str(where / "images.safetensors"))
        (where / "groups.json").write_text(json.dumps({
            "step": batch.step, "groups": groups, "data_state": batch.data_state, "seconds": batch.seconds,
            "busy_s": batch.answers.busy_s, "retried": batch.answers.retried, "lag": batch.lag,
            "version": batch.version}))


def load_in_flight(checkpoint: Path) -> dict[int, Batch]:
    """step → Batch, for every batch `save_in_flight` kept in `checkpoint` ({} when it kept none)."""
    out = {}
    for where in sorted((Path(checkpoint) / IN_FLIGHT).glob("step-*")):
        saved = json.loads((where / "groups.json").read_text())
        images = load_file(str(where / "images.safetensors")) if (where / "images.safetensors").exists() else {}
        groups = []
        for i, g in enumerate(saved["groups"]):
            prompt = EncodedPrompt(tuple(g["input_ids"]), images.get(f"{i}.pixel_values"),
                                   images.get(f"{i}.image_grid_thw"))
            groups.append(Group(g["sample_id"], prompt, [Completion(**c) for c in g["completions"]],
                                g["weights_version"]))
        answers = Answers(groups, saved["busy_s"], saved["retried"])
        out[saved["step"]] = Batch(saved["step"], read_samples(where / "samples.parquet"), answers,
                                   saved["data_state"], saved["seconds"], saved["lag"], saved["version"])
    return out
