"""The vLLM engine module in the main venv (no vllm here): importable for configs and tests, and a clear error
when constructed. The engine itself is tested for real in tests/vllm_engine with .venv-vllm."""

import importlib

import pytest

from tracer1.engines.vllm import WORKER_EXTENSION, VLLMEngine, _incomplete_fused_groups, vllm_available


def test_module_imports_without_vllm():
    assert callable(VLLMEngine)
    module, _, name = WORKER_EXTENSION.rpartition(".")
    assert hasattr(importlib.import_module(module), name)


@pytest.mark.skipif(vllm_available(),
                    reason="vllm is installed in this venv (a GPU machine); tests/vllm_engine covers the engine")
def test_constructing_without_vllm_names_the_install(tmp_path):
    with pytest.raises(ImportError, match=r"make vllm-venv.*\.\[gpu\]|\.\[gpu\].*make vllm-venv"):
        VLLMEngine(tmp_path)


def test_partial_states_must_bring_whole_fused_groups():
    layer = "model.layers.3.self_attn."
    qkv = [f"{layer}{p}_proj.weight" for p in "qkv"]
    assert _incomplete_fused_groups(qkv + ["lm_head.weight"]) == []
    assert _incomplete_fused_groups(qkv[:1]) == qkv[1:]
    assert _incomplete_fused_groups(["model.layers.0.mlp.up_proj.weight"]) == ["model.layers.0.mlp.gate_proj.weight"]
