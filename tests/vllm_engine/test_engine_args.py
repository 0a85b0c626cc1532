"""The arguments tracer1 gives vLLM (tracer1.engines.vllm_args) against the installed vLLM's own validation, without
starting an engine: `EngineArgs(**kwargs).create_engine_config()` for the tiny text planner (max_model_len checked
against the model's context), and vLLM's `MultiModalConfig` for a vision-language planner's limits and processor
settings. A vision-language `ModelConfig` cannot be built here: vLLM inspects the Qwen-VL model class, which imports
torchvision, absent from .venv-vllm (see PLATFORM notes); on a GPU machine `make_engine` builds it for real."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from vllm.config.multimodal import MultiModalConfig
from vllm.engine.arg_utils import EngineArgs

from tracer1.config import RunConfig
from tracer1.engines.vllm_args import llm_arguments, planner_engine_args

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """The tiny text and vision-language planners, built by the main venv as the project builds them."""
    out = tmp_path_factory.mktemp("engine-args")
    python = os.environ.get("TRACER1_MAIN_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
    if not Path(python).is_file():
        pytest.fail(f"the tiny planners are built with the main venv's python ({python}); run `make install` or set "
                    "TRACER1_MAIN_PYTHON")
    code = ("import sys; from tracer1.models.tiny import build_tiny_planner as b; "
            "b(sys.argv[1] + '/text', kind='text'); b(sys.argv[1] + '/vl', kind='vl')")
    proc = subprocess.run([python, "-c", code, str(out)], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        pytest.fail(f"building the tiny planners failed:\n{proc.stderr}")
    return {"text": out / "text", "vl": out / "vl"}


def vllm_config(model_dir: Path, cfg: RunConfig):
    kwargs = llm_arguments(model_dir, on_cpu=True, **planner_engine_args(model_dir, cfg.model, cfg.rollout))
    return EngineArgs(**kwargs).create_engine_config()


def test_vllm_accepts_the_planner_arguments_and_keeps_the_configured_context(tiny):
    cfg = RunConfig.model_validate({"model": {"kind": "tiny-text"}, "rollout": {"max_new_tokens": 300}})
    config = vllm_config(tiny["text"], cfg)
    assert config.model_config.max_model_len == cfg.model.max_prompt_tokens + 300  # not the model's 8192
    assert config.parallel_config.tensor_parallel_size == cfg.rollout.tensor_parallel_size


def test_vllm_refuses_a_context_beyond_the_models(tiny):
    """The budget is validated by vLLM, which names max_model_len: a config asking for more than the checkpoint's
    context is stopped when the engine is built, not after it ran out of positions."""
    cfg = RunConfig.model_validate({"model": {"kind": "tiny-text", "max_prompt_tokens": 8000}})
    with pytest.raises(Exception, match=r"max_model_len \(8256\) is greater than the derived max_model_len"):
        vllm_config(tiny["text"], cfg)


def test_vllm_accepts_the_vision_language_limits_and_processor_settings(tiny):
    cfg = RunConfig.model_validate({"model": {"max_image_pixels": 28 * 28 * 40}})
    args = planner_engine_args(tiny["vl"], cfg.model, cfg.rollout)
    EngineArgs(**llm_arguments(tiny["vl"], on_cpu=False, **args))  # every key is an EngineArgs field
    mm = MultiModalConfig(limit_per_prompt=args["limit_mm_per_prompt"], mm_processor_kwargs=args["mm_processor_kwargs"])
    assert (mm.get_limit_per_prompt("image"), mm.get_limit_per_prompt("video")) == (1, 0)
    assert mm.merge_mm_processor_kwargs({})["size"] == {"shortest_edge": 3136, "longest_edge": 28 * 28 * 40}
