"""Rollout engines: one contract (`RolloutEngine`), a transformers engine and a vLLM engine.

`HFEngine` and `VLLMEngine` are imported on first use: the first pulls in torch and transformers, the second needs
a vLLM install (the `.venv-vllm` virtualenv on CPU, the regular `vllm` package on GPU).
"""

from tracer1.engines.base import Completion, Prompt, RolloutEngine, Sampling, completion_text

__all__ = ["Completion", "HFEngine", "Prompt", "RolloutEngine", "Sampling", "VLLMEngine", "completion_text",
           "make_engine"]


def make_engine(model_dir, model_cfg, rollout_cfg, *, seed: int = 0) -> RolloutEngine:
    """The engine `rollout.engine` names, serving the planner at `model_dir` as `model` configures it."""
    if rollout_cfg.engine == "hf":
        from tracer1.engines.hf import HFEngine  # noqa: PLC0415

        return HFEngine(model_dir, dtype=model_cfg.dtype, attn_implementation=model_cfg.attn_implementation,
                        trust_remote_code=model_cfg.trust_remote_code)
    from tracer1.engines.vllm import VLLMEngine  # noqa: PLC0415
    from tracer1.engines.vllm_args import planner_engine_args  # noqa: PLC0415

    return VLLMEngine(model_dir, **planner_engine_args(model_dir, model_cfg, rollout_cfg, seed=seed))


def __getattr__(name: str):
    if name == "HFEngine":
        from tracer1.engines.hf import HFEngine  # noqa: PLC0415

        return HFEngine
    if name == "VLLMEngine":
        from tracer1.engines.vllm import VLLMEngine  # noqa: PLC0415

        return VLLMEngine
    raise AttributeError(f"module 'tracer1.engines' has no attribute {name!r}")
