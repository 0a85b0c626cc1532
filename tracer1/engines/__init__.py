"""Rollout engines: one contract (`RolloutEngine`), a transformers engine and a vLLM engine.

`HFEngine` and `VLLMEngine` are imported on first use: the first pulls in torch and transformers, the second needs
a vLLM install (the `.venv-vllm` virtualenv on CPU, the regular `vllm` package on GPU).
"""

from tracer1.engines.base import Completion, Prompt, RolloutEngine, Sampling, completion_text

__all__ = ["Completion", "HFEngine", "Prompt", "RolloutEngine", "Sampling", "VLLMEngine", "completion_text"]


def __getattr__(name: str):
    if name == "HFEngine":
        from tracer1.engines.hf import HFEngine  # noqa: PLC0415

        return HFEngine
    if name == "VLLMEngine":
        from tracer1.engines.vllm import VLLMEngine  # noqa: PLC0415

        return VLLMEngine
    raise AttributeError(f"module 'tracer1.engines' has no attribute {name!r}")
