"""The main-venv half of the vLLM tests and benchmark (run with the main venv's python, never imported by the
vllm venv): builds the tiny text planner and its planner prompts exactly as the project does, and computes the
learner's teacher-forced log-probs (`tracer1.models.inputs.completion_logprobs`) for completions vLLM sampled.

    python tests/vllm_engine/reference.py build OUT_DIR [--prompts N] [--seed S]
        → OUT_DIR/tiny (the planner), OUT_DIR/prompts.json (N rendered prompts of the built-in world)
    python tests/vllm_engine/reference.py logprobs MODEL JOB.json OUT.json
        JOB: {"weights": null | "file.safetensors", "prompts": [text, ...], "completions": [[id, ...], ...]}
        (one prompt per completion) → OUT: {"logprobs": [[float, ...], ...], "prompt_token_ids": [[int, ...]]}
    python tests/vllm_engine/reference.py hf-generate MODEL JOB.json OUT.json
        JOB: {"prompts": [text, ...], "sampling": {Sampling's fields}} → OUT: HFEngine's completions, as dicts
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def planner_prompts(model_dir: str | Path, count: int) -> list[str]:
    """`count` planner prompts (text model: instruction + accessibility text) from built-in world tasks."""
    from tracer1.envs.base import a11y_text
    from tracer1.envs.builtin import Episode, make_task
    from tracer1.models.loading import load_planner
    from tracer1.models.prompt import build_prompt

    bundle = load_planner(model_dir)
    texts = []
    for seed in range(count):
        task = make_task(seed)
        episode = Episode(task, 360, 640, 20)
        prompt = build_prompt(bundle, instruction=task.instruction, a11y=a11y_text(episode.phone.elements),
                              horizon=5, max_prompt_tokens=1024)
        texts.append(prompt.text)
    return texts


def build(out: Path, prompts: int, seed: int) -> None:
    from tracer1.models.tiny import build_tiny_planner

    model = build_tiny_planner(out / "tiny", kind="text", seed=seed)
    (out / "prompts.json").write_text(json.dumps(planner_prompts(model, prompts)))


def logprobs(model_dir: str, job_path: str, out_path: str) -> None:
    import torch
    from safetensors.torch import load_file

    from tracer1.engines.base import Prompt
    from tracer1.models.inputs import completion_logprobs, encode_for_training, encode_prompt
    from tracer1.models.loading import load_planner

    job = json.loads(Path(job_path).read_text())
    bundle = load_planner(model_dir, dtype="float32")
    if job.get("weights"):
        bundle.model.load_state_dict(load_file(job["weights"]), strict=True)
    prompts = [Prompt(text=t) for t in job["prompts"]]
    completions = job["completions"]
    batch = encode_for_training(bundle, prompts, completions)
    with torch.no_grad():
        logp = completion_logprobs(bundle.model, batch)
    mask = batch["completion_mask"].bool()
    result = {
        "logprobs": [logp[row][mask[row]].tolist() for row in range(len(completions))],
        "prompt_token_ids": [list(encode_prompt(bundle, p).input_ids) for p in prompts],
    }
    Path(out_path).write_text(json.dumps(result))


def hf_generate(model_dir: str, job_path: str, out_path: str) -> None:
    from dataclasses import asdict

    from tracer1.engines.base import Prompt, Sampling
    from tracer1.engines.hf import HFEngine

    job = json.loads(Path(job_path).read_text())
    sampling = Sampling(**{k: tuple(v) if k == "stop" else v for k, v in job["sampling"].items()})
    groups = HFEngine(model_dir, dtype="float32").generate([Prompt(text=t) for t in job["prompts"]], sampling)
    Path(out_path).write_text(json.dumps([[asdict(c) for c in group] for group in groups]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reference.py")
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("out")
    b.add_argument("--prompts", type=int, default=8)
    b.add_argument("--seed", type=int, default=0)
    for name in ("logprobs", "hf-generate"):
        p = sub.add_parser(name)
        p.add_argument("model")
        p.add_argument("job")
        p.add_argument("result")
    args = parser.parse_args(argv)
    if args.cmd == "build":
        build(Path(args.out), args.prompts, args.seed)
    elif args.cmd == "logprobs":
        logprobs(args.model, args.job, args.result)
    else:
        hf_generate(args.model, args.job, args.result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
