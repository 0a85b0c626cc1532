"""Loading a planner checkpoint (a tiny one from `tracer1.models.tiny`, or a downloaded Qwen2.5-VL / Qwen3-VL /
text model) into a `PlannerBundle`: the model plus everything prompts, engines and the learner need about it.

    bundle = load_planner("runs/tiny-vl")                 # or a hub id already in the local HF cache
    bundle.model, bundle.tokenizer, bundle.processor, bundle.is_vision, bundle.banned_token_ids

Vision-language or text-only is read from config.json (a `vision_config` means vision): vision checkpoints load
with `AutoModelForImageTextToText` and `AutoProcessor`, text ones with `AutoModelForCausalLM`. Weights load from
safetensors only (pickled .bin files can run code when loaded).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DTYPES = ("float32", "bfloat16", "float16")
# Placeholders the processor expands into image/video patches: a planner that writes one breaks its own next
# prompt (and vLLM refuses such prompts), so engines mask them out of sampling.
VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+\Z")
_EXPECTED = ("a model directory with config.json, model*.safetensors and tokenizer files (tokenizer.json / "
             "tokenizer_config.json; plus processor files for a vision model); build a tiny one with "
             "`python -m tracer1.models.tiny --out DIR`")


@dataclass
class PlannerBundle:
    """A loaded planner. `eos_token_ids` lists the end-of-turn token first (<|im_end|> for Qwen);
    `banned_token_ids` are ids that must never be sampled: vision placeholders, and embedding rows that no
    tokenizer entry uses (models pad their vocabulary, e.g. Qwen2.5-VL-7B to 152064 for 151665 tokens)."""

    model: Any
    tokenizer: Any
    processor: Any | None
    is_vision: bool
    path: str
    eos_token_ids: tuple[int, ...]
    banned_token_ids: tuple[int, ...]
    pad_token_id: int
    image_token_id: int | None = None
    video_token_id: int | None = None
    mm_token_types: bool = False            # forward() takes mm_token_type_ids (Qwen-VL on transformers >= 5)

    @property
    def end_of_turn_id(self) -> int:
        """The token that ends the assistant's turn; SFT targets end with it."""
        return self.eos_token_ids[0]

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def save_tokenizer(self, directory: str | Path) -> None:
        """Write the tokenizer files (and for vision models the processor files) into `directory`, so a
        checkpoint of the trained weights loads with `load_planner` like the original."""
        (self.processor if self.processor is not None else self.tokenizer).save_pretrained(str(directory))


@contextmanager
def quiet_progress() -> Iterator[None]:
    """No transformers progress bars inside (loading a 1 MB model should not draw two of them)."""
    from transformers.utils import logging

    enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            logging.enable_progress_bar()


def torch_dtype(name: str) -> Any:
    import torch

    if name not in DTYPES:
        raise ValueError(f"dtype {name!r} is not one of {', '.join(DTYPES)}")
    return getattr(torch, name)


def check_model_dir(path: str | Path) -> Path | str:
    """The local directory (a Path), or a hub id (str) to look up in the local HF cache. Raises
    FileNotFoundError saying what a planner directory must hold."""
    local = Path(path).expanduser()
    if not local.exists():
        if _HUB_ID.match(str(path)) and not str(path).startswith((".", "~")):
            return str(path)
        raise FileNotFoundError(f"no planner at {path}: expected {_EXPECTED}")
    if not local.is_dir():
        raise FileNotFoundError(f"{path} is a file; expected {_EXPECTED}")
    missing = []
    if not (local / "config.json").is_file():
        missing.append("config.json")
    if not any(local.glob("*.safetensors")):
        found = sorted(p.name for p in local.glob("*.bin"))
        missing.append("model*.safetensors" + (f" (found {', '.join(found)}: only safetensors are loaded)"
                                                if found else ""))
    if not ((local / "tokenizer.json").is_file() or (local / "tokenizer_config.json").is_file()):
        missing.append("tokenizer.json / tokenizer_config.json")
    if missing:
        raise FileNotFoundError(f"{path} is not a planner directory: it lacks {', '.join(missing)}; expected "
                                f"{_EXPECTED}")
    return local


def load_planner(path: str | Path, *, dtype: str = "float32", device: str = "cpu", attn_implementation: str = "sdpa",
                 trust_remote_code: bool = False, load_model: bool = True) -> PlannerBundle:
    """Load the planner at `path` (see the module docstring) in `dtype` on `device`, in eval mode.
    `load_model=False` loads everything but the weights (`model` is None): what a process that builds prompts
    for an engine holding the model elsewhere (vLLM) needs."""
    from transformers import AutoConfig

    where = check_model_dir(path)
    common = {"trust_remote_code": trust_remote_code}
    try:
        config = AutoConfig.from_pretrained(where, **common)
    except (OSError, ValueError, KeyError) as exc:
        if isinstance(where, str):  # not a local directory: a hub id that could not be opened
            raise FileNotFoundError(f"no planner at {path}: not a local directory, and not a hub model "
                                    f"transformers could open ({exc}); expected {_EXPECTED}") from None
        raise ValueError(f"cannot read the model config at {path}: {exc}\nExpected a transformers model "
                         "(Qwen2.5-VL / Qwen3-VL style image-text-to-text, or a causal LM)") from None
    is_vision = getattr(config, "vision_config", None) is not None
    tokenizer, processor = _load_tokenizer(where, is_vision, common)
    if not load_model:
        return _bundle(None, tokenizer, processor, is_vision, str(path), config=config,
                       generation_config=_generation_config(where, common))
    with quiet_progress():
        model = _load_model(where, config, is_vision, dtype, attn_implementation, common)
    model.to(device).eval()
    return _bundle(model, tokenizer, processor, is_vision, str(path))


def _generation_config(where, common: dict):
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(where, **common)
    except OSError:  # no generation_config.json: the tokenizer's EOS is all there is
        return None


def _load_model(where, config, is_vision: bool, dtype: str, attn_implementation: str, common: dict):
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    auto = AutoModelForImageTextToText if is_vision else AutoModelForCausalLM
    try:
        return auto.from_pretrained(where, config=config, dtype=torch_dtype(dtype), use_safetensors=True,
                                    attn_implementation=attn_implementation, **common)
    except ValueError as exc:
        if "Unrecognized configuration class" not in str(exc):
            raise
        kind = "an image-text-to-text (vision-language)" if is_vision else "a causal language"
        raise ValueError(f"{where}: model_type {config.model_type!r} is not {kind} model that transformers "
                         f"knows; tracer1 loads Qwen2.5-VL / Qwen3-VL style or causal-LM checkpoints") from None


def _model_class(config, is_vision: bool):
    """The class transformers' auto mapping would instantiate for `config` (without building the model)."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    return (AutoModelForImageTextToText if is_vision else AutoModelForCausalLM)._model_mapping[type(config)]


def _load_tokenizer(where, is_vision: bool, common: dict):
    from transformers import AutoProcessor, AutoTokenizer

    if not is_vision:
        return AutoTokenizer.from_pretrained(where, **common), None
    processor = AutoProcessor.from_pretrained(where, **common)
    if getattr(processor, "image_processor", None) is None or getattr(processor, "tokenizer", None) is None:
        raise ValueError(f"{where}: the vision model's processor has no image processor or tokenizer; expected "
                         "processor_config.json / preprocessor_config.json beside the tokenizer files")
    return processor.tokenizer, processor


def _bundle(model, tokenizer, processor, is_vision: bool, path: str, *, config=None,
            generation_config=None) -> PlannerBundle:
    vocab = tokenizer.get_vocab()  # not convert_tokens_to_ids: it maps unknown tokens to unk (Qwen: an EOS)
    gen = getattr(model, "generation_config", None) if model is not None else generation_config
    eos = [tokenizer.eos_token_id]
    gen_eos = getattr(gen, "eos_token_id", None)
    eos += gen_eos if isinstance(gen_eos, (list, tuple)) else [gen_eos]
    eos_ids = tuple(dict.fromkeys(int(i) for i in eos if i is not None))
    if not eos_ids:
        raise ValueError(f"{path}: neither the tokenizer nor generation_config.json names an EOS token")
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = getattr(gen, "pad_token_id", None)
    pad = int(pad) if pad is not None else eos_ids[-1]
    config = model.config if model is not None else config
    banned = {vocab[t] for t in VISION_TOKENS if t in vocab}
    for name in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"):
        if is_vision and getattr(config, name, None) is not None:
            banned.add(int(getattr(config, name)))
    if model is not None:
        rows = model.get_output_embeddings().weight.shape[0]
    else:  # the output embedding's rows, as the config declares them (VL models: in the text config)
        rows = getattr(getattr(config, "text_config", None), "vocab_size", None) or config.vocab_size
    banned.update(range(len(tokenizer), rows))  # embedding rows beyond the tokenizer decode to nothing
    banned -= set(eos_ids)
    forward = (model if model is not None else _model_class(config, is_vision)).forward
    return PlannerBundle(
        mm_token_types="mm_token_type_ids" in inspect.signature(forward).parameters,
        model=model, tokenizer=tokenizer, processor=processor, is_vision=is_vision, path=path,
        eos_token_ids=eos_ids, banned_token_ids=tuple(sorted(banned)), pad_token_id=pad,
        image_token_id=getattr(config, "image_token_id", None) if is_vision else None,
        video_token_id=getattr(config, "video_token_id", None) if is_vision else None)


def load_weights(model_dir: str | Path) -> dict:
    """The tensors of every `model*.safetensors` file of an HF directory, by their checkpoint names (what
    `update_weights` of an engine takes). Safetensors only: nothing that can run code is read."""
    from safetensors.torch import load_file  # noqa: PLC0415

    files = sorted(Path(model_dir).glob("model*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{model_dir}: no model*.safetensors")
    return {name: tensor for path in files for name, tensor in load_file(path).items()}
