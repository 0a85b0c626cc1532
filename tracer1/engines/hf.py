"""The transformers rollout engine: batched `generate` on CPU or one GPU, for tiny models, tests and as the
reference the vLLM engine is checked against.

    engine = HFEngine("runs/tiny-vl")                       # or HFEngine(load_planner(...))
    groups = engine.generate(prompts, Sampling(n=8, temperature=1.0, seed=0))

* prompts are tokenised by `tracer1.models.inputs` (the learner's tokenisation), left-padded, and generated in
  micro-batches of at most `max_batch_size` sequences; a prompt's n samples are n rows of the batch;
* `Completion.logprobs` are log p(token) under the raw model: log_softmax of the logits *before* temperature,
  top-p and the banned-token mask, what a teacher-forced forward computes (`completion_logprobs`). The learner
  does not read them: GRPO's old-policy and reference log-probs are its own forward passes, at the rollout
  temperature (`tracer1.learner.worker`);
* banned tokens (image/video placeholders, unused embedding rows) are set to -inf before sampling;
* a completion ends at EOS (kept in `token_ids`, dropped from `text`) or at a stop string (kept in the text; the
  token that completed it is the last token), else at `max_new_tokens` ("length");
* with a seed, sampling runs on a forked RNG seeded with it: the same prompts, sampling and batch size give the
  same completions, and the caller's RNG is untouched. Temperature 0 is greedy (n copies of one completion);
* CPU threads are the process's (`torch.set_num_threads`; in a rollout actor `cluster.rollout.threads`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import (
    GenerationConfig, LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList,
)

from tracer1.engines.base import Completion, Prompt, Sampling, completion_text
from tracer1.models.inputs import EncodedPrompt, collate, encode_prompts
from tracer1.models.loading import PlannerBundle, load_planner


class BanTokens(LogitsProcessor):
    """Sets the logits of `token_ids` to -inf, so they are never sampled (EasyR1 masks placeholders this way)."""

    def __init__(self, token_ids: Sequence[int]):
        self.token_ids = torch.tensor(sorted(set(token_ids)), dtype=torch.long)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.token_ids.numel():
            scores = scores.index_fill(-1, self.token_ids.to(scores.device), float("-inf"))
        return scores


class StopStrings(StoppingCriteria):
    """Ends a row once its generated text contains a stop string, remembering after how many generated tokens
    (`stopped_at[row]`), so post-processing cuts there and not at the padding that follows."""

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_length: int, rows: int):
        self.tokenizer, self.stops, self.prompt_length = tokenizer, tuple(s for s in stops if s), prompt_length
        # Decoding the last few tokens is enough: every token is at least one byte of text.
        self.window = max((len(s.encode()) for s in self.stops), default=0) + 2
        self.stopped_at: list[int | None] = [None] * rows

    def __call__(self, input_ids: torch.Tensor, scores: Any = None, **kwargs) -> torch.Tensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        generated = input_ids.shape[1] - self.prompt_length
        if not self.stops or generated <= 0:
            return done
        tails = input_ids[:, -min(generated, self.window):].tolist()
        for row, tail in enumerate(tails):
            if self.stopped_at[row] is not None:
                done[row] = True
                continue
            text = self.tokenizer.decode(tail, skip_special_tokens=False)
            if any(stop in text for stop in self.stops):
                self.stopped_at[row] = generated
                done[row] = True
        return done


class HFEngine:
    """`RolloutEngine` on transformers `generate` (see the module docstring)."""

    def __init__(self, bundle_or_path: PlannerBundle | str | Path, *, dtype: str = "float32", device: str = "cpu",
                 attn_implementation: str = "sdpa", trust_remote_code: bool = False, max_batch_size: int = 64):
        """A loaded bundle is used as is (the load options then do not apply); a path is loaded with them."""
        if isinstance(bundle_or_path, PlannerBundle):
            self.bundle = bundle_or_path
        else:
            self.bundle = load_planner(bundle_or_path, dtype=dtype, device=device,
                                       attn_implementation=attn_implementation, trust_remote_code=trust_remote_code)
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.max_batch_size = max_batch_size
        self.device = self.bundle.device
        self._asleep = False
        self._aliases: dict[str, str] | None = None  # checkpoint name -> state_dict name, computed on first use
        # generate() fills every setting we leave unset from the model's generation_config.json (real Qwen
        # checkpoints ship top_k=1, repetition_penalty=1.05, ...). While generating, the model sees this one
        # instead, so `Sampling` is the whole sampling policy.
        self._neutral = GenerationConfig(eos_token_id=list(self.bundle.eos_token_ids),
                                         pad_token_id=self.bundle.pad_token_id)

    @property
    def model(self) -> Any:
        return self.bundle.model

    # -- generation ------------------------------------------------------------------------------------------

    takes_encoded_prompts = True  # generate() also takes `EncodedPrompt`s: it encodes with tracer1.models.inputs

    def generate(self, prompts: Sequence[Prompt | EncodedPrompt], sampling: Sampling) -> list[list[Completion]]:
        if self._asleep:
            raise RuntimeError("the engine is asleep; call wake() before generate()")
        if not prompts:
            return []
        encoded = encode_prompts(self.bundle, prompts)
        greedy = sampling.temperature == 0
        copies = 1 if greedy else sampling.n  # greedy samples are all the same: generate one, copy it
        rows = [(i, e) for i, e in enumerate(encoded) for _ in range(copies)]
        results: list[list[Completion]] = [[] for _ in prompts]
        with torch.random.fork_rng(devices=self._rng_devices(), enabled=sampling.seed is not None):
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            for start in range(0, len(rows), self.max_batch_size):
                chunk = rows[start:start + self.max_batch_size]
                for (index, _), completion in zip(chunk, self._generate_batch([e for _, e in chunk], sampling)):
                    completion.prompt_index = index
                    results[index].append(completion)
        if greedy:
            results = [[_copy(group[0]) for _ in range(sampling.n)] for group in results]
        return results

    def _rng_devices(self) -> list:
        return [self.device] if self.device.type == "cuda" else []

    def _generate_batch(self, encoded: list[EncodedPrompt], sampling: Sampling) -> list[Completion]:
        batch = collate(self.bundle, [e.input_ids for e in encoded], encoded, padding_side="left")
        batch = {k: v.to(self.device) for k, v in batch.items()}
        prompt_length = batch["input_ids"].shape[1]
        stop = StopStrings(self.bundle.tokenizer, sampling.stop, prompt_length, len(encoded))
        sample = sampling.temperature > 0
        config = GenerationConfig(
            max_new_tokens=sampling.max_new_tokens, do_sample=sample,
            temperature=sampling.temperature if sample else None, top_p=sampling.top_p if sample else None,
            top_k=0 if sample else None,  # transformers' top_k=50 default is not part of Sampling
            eos_token_id=list(self.bundle.eos_token_ids), pad_token_id=self.bundle.pad_token_id,
            return_dict_in_generate=True, output_logits=True)
        own, self.model.generation_config = self.model.generation_config, self._neutral
        try:
            with torch.inference_mode():
                out = self.model.generate(
                    **batch, generation_config=config, stopping_criteria=StoppingCriteriaList([stop]),
                    logits_processor=LogitsProcessorList([BanTokens(self.bundle.banned_token_ids)]))
        finally:
            self.model.generation_config = own
        generated = out.sequences[:, prompt_length:]
        # out.logits holds each step's raw logits (before the ban, temperature and top-p), steps x (B, V) in
        # float32: fine for small vocabularies; big models sample on vLLM.
        picked = torch.stack([
            torch.log_softmax(logits.float(), -1).gather(-1, generated[:, step, None]).squeeze(-1)
            for step, logits in enumerate(out.logits)], dim=1)
        completions = []
        for row, e in enumerate(encoded):
            ids, reason = self._cut(generated[row].tolist(), stop.stopped_at[row])
            completions.append(Completion(
                prompt_index=-1, text=completion_text(self.bundle.tokenizer, ids, sampling.stop), token_ids=ids,
                logprobs=picked[row, :len(ids)].tolist(), finish_reason=reason,
                prompt_token_ids=list(e.input_ids)))
        return completions

    def _cut(self, ids: list[int], stopped_at: int | None) -> tuple[list[int], str]:
        """The row's own tokens: up to the first EOS (kept) or the stop string's last token; after either the
        batch pads the row with pad tokens (Qwen's pad is also an EOS, hence the order of the checks)."""
        limit = stopped_at if stopped_at is not None else len(ids)
        eos = set(self.bundle.eos_token_ids)
        for position, token in enumerate(ids[:limit]):
            if token in eos:
                return ids[:position + 1], "stop"
        return ids[:limit], "stop" if stopped_at is not None else "length"


    # -- weights and memory ----------------------------------------------------------------------------------

    def update_weights(self, state: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
        """Copy HF-named tensors into the model in place. Names are the model's own (`state_dict()`) or the
        checkpoint's (`save_pretrained` names, which transformers 5 maps: Qwen2.5-VL saves "model.layers.*" for
        "model.language_model.layers.*"). Every name and shape is checked before the first copy, so a bad state
        dict changes nothing."""
        params = self.model.state_dict(keep_vars=True)
        if self._aliases is None:
            self._aliases = checkpoint_aliases(self.model)
        updates = []
        for name, tensor in (state.items() if isinstance(state, Mapping) else state):
            target = params.get(name)
            if target is None and name in self._aliases:
                target = params[self._aliases[name]]
            if target is None:
                raise KeyError(f"update_weights: {name!r} is not a parameter or buffer of the model "
                               f"(its names look like {next(iter(params))!r})")
            tensor = torch.as_tensor(tensor)
            if tuple(tensor.shape) != tuple(target.shape):
                raise ValueError(f"update_weights: {name!r} has shape {tuple(tensor.shape)}, the model's is "
                                 f"{tuple(target.shape)}")
            updates.append((target, tensor))
        with torch.no_grad():
            for target, tensor in updates:
                target.copy_(tensor.to(device=target.device, dtype=target.dtype))

    def sleep(self) -> None:
        """On a GPU: move the weights to CPU and free the cached memory (for phases where a colocated learner
        needs it). On CPU there is nothing to free: a no-op."""
        if self.device.type != "cpu" and not self._asleep:
            self.model.to("cpu")
            torch.cuda.empty_cache()
            self._asleep = True

    def wake(self) -> None:
        if self._asleep:
            self.model.to(self.device)
            self._asleep = False


def checkpoint_aliases(model: Any) -> dict[str, str]:
    """{checkpoint name: state_dict name} for the names transformers renames when it saves (empty when it
    renames nothing, or when this transformers has no revert_weight_conversion). Renames only: a tensor that
    saving reshapes or merges keeps just its state_dict name."""
    try:
        from transformers.core_model_loading import revert_weight_conversion
    except ImportError:
        return {}
    state = model.state_dict()
    by_identity = {id(tensor): name for name, tensor in state.items()}
    try:
        saved = revert_weight_conversion(model, dict(state))
    except Exception:  # an internal helper: if it changes, module names still work
        return {}
    return {name: by_identity[id(t)] for name, t in saved.items() if id(t) in by_identity and name not in state}


def _copy(c: Completion) -> Completion:
    return Completion(prompt_index=c.prompt_index, text=c.text, token_ids=list(c.token_ids),
                      logprobs=list(c.logprobs), finish_reason=c.finish_reason,
                      prompt_token_ids=list(c.prompt_token_ids))
