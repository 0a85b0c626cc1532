"""`load_planner`: vision or text decided from config.json, safetensors only, the ids engines need (EOS with the
end-of-turn token first, pad, banned placeholders), and errors that say what a planner directory must hold."""

from __future__ import annotations

import json
import shutil

import huggingface_hub.constants
import pytest
import torch

from tracer1.models.loading import VISION_TOKENS, check_model_dir, load_planner

from tiny_planners import one_thread, text_bundle, tiny_dirs, vl_bundle  # noqa: F401  (fixtures)


def test_a_vl_directory_loads_as_a_vision_bundle(vl_bundle):
    b = vl_bundle
    vocab = b.tokenizer.get_vocab()
    assert b.is_vision and b.processor is not None and b.processor.tokenizer is b.tokenizer
    assert type(b.model).__name__ == "Qwen2_5_VLForConditionalGeneration" and not b.model.training
    assert b.eos_token_ids == (vocab["<|im_end|>"], vocab["<|endoftext|>"]) and b.end_of_turn_id == vocab["<|im_end|>"]
    assert b.pad_token_id == vocab["<|endoftext|>"]
    assert b.image_token_id == vocab["<|image_pad|>"] and b.video_token_id == vocab["<|video_pad|>"]
    assert set(b.banned_token_ids) == {vocab[t] for t in VISION_TOKENS}
    assert b.model.dtype == torch.float32 and b.device.type == "cpu"


def test_a_text_directory_loads_as_a_causal_lm_without_processor(text_bundle):
    b = text_bundle
    assert not b.is_vision and b.processor is None and b.image_token_id is None
    assert type(b.model).__name__ == "Qwen2ForCausalLM"
    vocab = b.tokenizer.get_vocab()
    # A text model shares Qwen's vocabulary: its placeholders are banned too (it must never write them).
    assert set(b.banned_token_ids) == {vocab[t] for t in VISION_TOKENS}


def test_dtype_and_attention_are_passed_through(tiny_dirs):
    b = load_planner(tiny_dirs["text"], dtype="bfloat16", attn_implementation="eager")
    assert b.model.dtype == torch.bfloat16 and b.model.config._attn_implementation == "eager"
    with pytest.raises(ValueError, match="float32, bfloat16, float16"):
        load_planner(tiny_dirs["text"], dtype="float8")


def test_embedding_rows_without_a_token_are_banned(tiny_dirs, tmp_path):
    # Real checkpoints pad the vocabulary (Qwen2.5-VL-7B: 152064 rows for 151665 tokens); those rows decode
    # to nothing, so a planner must never sample them.
    path = shutil.copytree(tiny_dirs["text"], tmp_path / "padded")
    b = load_planner(path)
    rows = len(b.tokenizer)
    b.model.resize_token_embeddings(rows + 64)
    b.model.save_pretrained(path)
    padded = load_planner(path)
    assert set(range(rows, rows + 64)) <= set(padded.banned_token_ids)
    assert not set(padded.eos_token_ids) & set(padded.banned_token_ids)


def test_save_tokenizer_makes_a_weights_only_checkpoint_loadable(vl_bundle, tmp_path):
    vl_bundle.model.save_pretrained(tmp_path / "ckpt")
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        load_planner(tmp_path / "ckpt")
    vl_bundle.save_tokenizer(tmp_path / "ckpt")
    again = load_planner(tmp_path / "ckpt")
    assert again.is_vision and again.banned_token_ids == vl_bundle.banned_token_ids


def test_a_missing_path_says_what_a_planner_directory_holds(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no planner at .*config\.json.*safetensors.*tracer1\.models\.tiny"):
        load_planner(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileNotFoundError, match="is a file"):
        load_planner(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="lacks config.json, model\\*.safetensors, tokenizer"):
        load_planner(tmp_path / "empty")


def test_pickled_weights_are_refused(tiny_dirs, tmp_path):
    path = shutil.copytree(tiny_dirs["text"], tmp_path / "bin")
    (path / "model.safetensors").rename(path / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="found pytorch_model.bin: only safetensors are loaded"):
        load_planner(path)


def test_an_unknown_model_type_is_named(tiny_dirs, tmp_path):
    path = shutil.copytree(tiny_dirs["text"], tmp_path / "odd")
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "model_type": "no-such-model"}))
    with pytest.raises(ValueError, match="no-such-model"):
        load_planner(path)


def test_hub_ids_pass_the_directory_check_and_an_unknown_one_is_named(monkeypatch):
    assert check_model_dir("Qwen/Qwen2.5-VL-7B-Instruct") == "Qwen/Qwen2.5-VL-7B-Instruct"
    with pytest.raises(FileNotFoundError):
        check_model_dir("./not/here")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no network tries (and retries)
    with pytest.raises(FileNotFoundError, match="no planner at nobody/no-such-planner: not a local directory"):
        load_planner("nobody/no-such-planner")
