"""The arguments tracer1 gives vLLM (tracer1.engines.vllm_args), built from the run config without an engine: sizes
from the config, one image and no video for vision-language planners, image bounds that match what the prompt
builder resized the screenshot to, and the processor accepting those bounds the way vLLM hands them over. Their
acceptance by the installed vLLM's own validation is tests/vllm_engine/test_engine_args.py (.venv-vllm)."""

from __future__ import annotations

import pytest
from PIL import Image

from tracer1.config import RunConfig
from tracer1.engines.vllm_args import (
    EXECUTOR_TEXT_TOKENS, executor_engine_args, image_pixel_bounds, llm_arguments, planner_engine_args,
    planner_image_size,
)
from tracer1.models.loading import load_planner
from tracer1.models.prompt import build_prompt, image_geometry, image_tokens
from tracer1.models.tiny import build_tiny_planner


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("vllm-args")
    return {kind: build_tiny_planner(root / kind, kind=kind) for kind in ("vl", "text")}


def run_config(**sections) -> RunConfig:
    return RunConfig.model_validate(sections)


def test_the_planner_engine_is_sized_by_the_prompt_and_generation_budgets(tiny):
    cfg = run_config(model={"max_prompt_tokens": 3000, "dtype": "bfloat16"},
                     rollout={"max_new_tokens": 512, "tensor_parallel_size": 2, "gpu_memory_utilization": 0.4})
    args = planner_engine_args(tiny["text"], cfg.model, cfg.rollout, seed=7)
    assert args == {"dtype": "bfloat16", "seed": 7, "gpu_memory_utilization": 0.4, "tensor_parallel_size": 2,
                    "enforce_eager": False, "trust_remote_code": False, "max_model_len": 3512}
    cfg = run_config(model={"max_prompt_tokens": 3000}, rollout={"max_new_tokens": 512, "max_model_len": 6000})
    assert planner_engine_args(tiny["text"], cfg.model, cfg.rollout)["max_model_len"] == 6000  # the field wins


def test_a_vision_language_planner_gets_one_image_no_video_and_the_prompt_builders_image_bounds(tiny):
    cfg = run_config(model={"max_image_pixels": 28 * 28 * 40})
    args = planner_engine_args(tiny["vl"], cfg.model, cfg.rollout)
    assert args["limit_mm_per_prompt"] == {"image": 1, "video": 0}
    assert image_pixel_bounds(tiny["vl"]) == (3136, 50176)  # the tiny processor's own bounds
    assert args["mm_processor_kwargs"] == {"size": {"shortest_edge": 3136, "longest_edge": 28 * 28 * 40}}
    # the prompt builder's bound is the same: max_image_pixels within the processor's bounds, on both sides
    assert planner_image_size(tiny["vl"], 10**7) == {"shortest_edge": 3136, "longest_edge": 50176}
    assert planner_image_size(tiny["vl"], 1000) == {"shortest_edge": 3136, "longest_edge": 3136}
    bundle = load_planner(tiny["vl"], load_model=False)
    assert image_geometry(bundle)[1:] == image_pixel_bounds(tiny["vl"])
    # a text planner gets no multimodal arguments (vLLM ignores them there, and they would say nothing true)
    assert "limit_mm_per_prompt" not in planner_engine_args(tiny["text"], cfg.model, cfg.rollout)


def test_the_processor_leaves_a_prompt_builder_screenshot_as_it_is_under_those_bounds(tiny):
    """vLLM hands `size` to the HF processor with its `min_pixels`/`max_pixels` aliases filled in
    (Qwen2VLProcessingInfo._complete_mm_processor_size_aliases): with the tiny processor that call must give the
    image the token count the prompt builder budgeted (`image_tokens`), i.e. no second resize."""
    bundle = load_planner(tiny["vl"], load_model=False)
    max_image_pixels = 28 * 28 * 40
    prompt = build_prompt(bundle, instruction="open the settings", screenshot=Image.new("RGB", (640, 360)),
                          horizon=3, max_image_pixels=max_image_pixels)
    (image,) = prompt.images
    size = planner_image_size(tiny["vl"], max_image_pixels)
    as_vllm_passes_it = {"size": size, "min_pixels": size["shortest_edge"], "max_pixels": size["longest_edge"]}
    with pytest.warns(FutureWarning):  # transformers 5 deprecates the aliases vLLM adds; they still apply
        out = bundle.processor(text=[prompt.text], images=[image], **as_vllm_passes_it)
    t, h, w = out["image_grid_thw"][0].tolist()
    assert t * h * w // 4 == image_tokens(bundle, image)  # merge 2×2
    # and a bigger screenshot than the bound would be resized by it (the bound is live, not ignored)
    big = Image.new("RGB", (1280, 720))
    with pytest.warns(FutureWarning):
        out = bundle.processor(text=[prompt.text], images=[big], **as_vllm_passes_it)
    t, h, w = out["image_grid_thw"][0].tolist()
    assert t == 1 and h * 14 * w * 14 <= max_image_pixels < 1280 * 720  # 14-pixel patches


def test_the_executor_engine_is_sized_for_one_screenshot_its_text_and_its_answer():
    cfg = run_config(executor={"kind": "vlm", "model_path": "some/grounder", "engine": "vllm", "max_new_tokens": 64,
                               "tensor_parallel_size": 2, "gpu_memory_utilization": 0.7})
    args = executor_engine_args(cfg.executor, dtype="bfloat16", seed=3, image_tokens=16384)
    assert args == {"dtype": "bfloat16", "seed": 3, "tensor_parallel_size": 2, "gpu_memory_utilization": 0.7,
                    "max_model_len": 16384 + EXECUTOR_TEXT_TOKENS + 64, "limit_mm_per_prompt": {"image": 1, "video": 0}}


def test_llm_arguments_add_tracer1s_fixed_settings_and_the_cpu_workarounds(tiny):
    cfg = run_config()
    gpu = llm_arguments(tiny["vl"], on_cpu=False, **planner_engine_args(tiny["vl"], cfg.model, cfg.rollout))
    assert gpu["model"] == str(tiny["vl"]) and gpu["logprobs_mode"] == "raw_logprobs"
    assert gpu["max_model_len"] == cfg.model.max_prompt_tokens + cfg.rollout.max_new_tokens
    assert "enable_chunked_prefill" not in gpu
    cpu = llm_arguments(tiny["text"], on_cpu=True, max_model_len=2304)
    assert cpu["enable_chunked_prefill"] is False and cpu["max_num_batched_tokens"] == 4096
