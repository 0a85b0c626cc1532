"""The GPU memory plan of a run config: what one learner rank and one vLLM engine hold at their peak, term by term.

`--plan` (tracer1.placement) prints it under the placement and refuses a config whose learner rank needs more than
(1 − HEADROOM) of its GPU memory, or whose engine cannot hold its weights and one sequence of `max_model_len`
tokens of KV cache within `gpu_memory_utilization`. A learner rank's terms:

* **model states**: DeepSpeed's own estimator for the configured ZeRO stage
  (`estimate_zero3_model_states_mem_needs`: 18 bytes a parameter over the ranks plus 4 bytes × the largest
  layer; `estimate_zero2_model_states_mem_needs` for stages 1-2, with stage 1's unpartitioned 16-bit gradients
  added; stage 0 is ZeRO-2's estimate for one GPU), called with the model's parameters and largest layer.
* **KL reference** (`algorithm.kl_coef` > 0): the frozen reference lives on the learner's GPU, sharded like the
  policy under ZeRO-3 (its weights / ranks), whole otherwise.
* **activations** of one micro-batch (`micro_batch_sequences`: the RL loop splits a step's plans into ranks ×
  `learner.grad_accum_steps` micro-batches) of `model.max_prompt_tokens + rollout.max_new_tokens` tokens each:
  with `learner.gradient_checkpointing`, one hidden state per layer and token plus one layer's full activations
  (recomputed in the backward); without it every layer's. A layer's full activations per token are what its
  backward keeps (SDPA attention, no L × L matrix): two RMSNorm inputs in float32 (2 × 4h bytes), the
  normed inputs, q/k/v and the attention output (b·(3h + 2·kv·d)), and SwiGLU's gate, up, act and product
  (4·b·I).
* **logits**: the (B, W, V) logits of the micro-batch's completion window (`completion_logits`: W =
  `rollout.max_new_tokens` + 1 when a micro-batch's prompts are equally long, as a group's plans are) in the
  model's dtype, and at the loss's peak four float32 copies of them (`sequence_logprobs`' float copy kept for the
  backward and logsumexp's backward temporaries; measured in tests/test_memory.py). With
  `algorithm.logprob_chunk_tokens` the float32 copies shrink to a chunk's and only the logits' gradient is whole.
  `algorithm.entropy_coef` > 0 adds `token_entropy`'s whole float32 log-softmax and its backward.
* **weight-sync gather**: under ZeRO-3 one `rollout.weight_sync_bucket_mb` bucket (or the largest weight, if larger)
  gathered beyond the shard, and on the NCCL path (or `auto`, which may take it) two buckets more, packed for vLLM's
  transfer engine.

HEADROOM (10%) is kept for what the terms leave out: the CUDA context and NCCL buffers (~1-2 GB), allocator
fragmentation, the vision tower's activations, prompts of different lengths widening a micro-batch's window.

Model shapes come from the model directory's config.json (and its safetensors headers for the parameters) when
the directory exists here, else from KNOWN_MODELS by the path's last part.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

GB = 1e9
HEADROOM = 0.10  # a learner rank may plan on 90% of its GPU memory
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
# Float32 copies of the (B, W, V) logits alive at the loss's peak beyond the logits themselves, as measured in
# tests/test_memory.py: whole, whole with the entropy bonus, chunked with it (its whole log-softmax then dominates).
# Chunked without it: the logits' gradient (in their dtype) and CHUNK_FLOAT32_BUFFERS chunks (with margin).
LOGIT_FLOAT32_COPIES = {"whole": 4.0, "whole+entropy": 6.0, "chunked+entropy": 5.0}
CHUNK_FLOAT32_BUFFERS = 3
MICRO_BATCH = "learner.micro_batch_size (raise learner.grad_accum_steps to keep the batch)"


@dataclass(frozen=True)
class ModelShape:
    hidden: int
    layers: int
    vocab: int
    kv_heads: int
    head_dim: int
    intermediate: int
    params: int
    largest_layer: int     # parameters of the largest module (DeepSpeed's "largest layer"): the embedding

    def kv_bytes_per_token(self, dtype_bytes: int, tp: int = 1) -> int:
        """K and V of every layer for one token on one of `tp` tensor-parallel GPUs (KV heads split, or
        replicated when there are fewer than `tp`)."""
        return 2 * self.layers * max(1, self.kv_heads // tp) * self.head_dim * dtype_bytes


# From the models' config.json on the Hugging Face hub (the language model's text_config), and the parameters the
# safetensors hold (also what these shapes add up to):
#   https://huggingface.co/Qwen/Qwen3-VL-8B-Instruct/blob/main/config.json (…-Thinking: the same architecture):
#     hidden_size 4096, num_hidden_layers 36, vocab_size 151936, num_key_value_heads 8, head_dim 128,
#     intermediate_size 12288, tie_word_embeddings false; 8,767,123,696 parameters (8.77B).
#   https://huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct/blob/main/config.json: hidden_size 3584, num_hidden_layers
#     28, vocab_size 152064, num_key_value_heads 4 (28 heads of 128), intermediate_size 18944, untied; 8,292,166,656
#     parameters (8.29B). https://huggingface.co/ByteDance-Seed/UI-TARS-1.5-7B is a Qwen2.5-VL-7B fine-tune with
#     the same config.
# The largest layer is the embedding (= lm_head): vocab_size × hidden_size.
_QWEN3_VL_8B = ModelShape(hidden=4096, layers=36, vocab=151936, kv_heads=8, head_dim=128, intermediate=12288,
                          params=8_767_123_696, largest_layer=151936 * 4096)
_QWEN25_VL_7B = ModelShape(hidden=3584, layers=28, vocab=152064, kv_heads=4, head_dim=128, intermediate=18944,
                           params=8_292_166_656, largest_layer=152064 * 3584)
KNOWN_MODELS = {
    "qwen3-vl-8b-instruct": _QWEN3_VL_8B,
    "qwen3-vl-8b-thinking": _QWEN3_VL_8B,
    "qwen2.5-vl-7b-instruct": _QWEN25_VL_7B,
    "ui-tars-1.5-7b": _QWEN25_VL_7B,
}


def model_shape(path: str | None) -> ModelShape | None:
    """The shape of the model at `path`: read from the directory when it is here, else a known model's."""
    if not path:
        return None
    known = KNOWN_MODELS.get(Path(path).name.lower())
    directory = Path(path)
    if (directory / "config.json").is_file():
        return _shape_from_directory(directory, known)
    return known


def _shape_from_directory(directory: Path, known: ModelShape | None) -> ModelShape | None:
    config = json.loads((directory / "config.json").read_text())
    text = {**config, **config.get("text_config", {})}  # VL models keep the language model's shape there
    try:
        heads = text["num_attention_heads"]
        shape = dict(hidden=text["hidden_size"], layers=text["num_hidden_layers"], vocab=text["vocab_size"],
                     kv_heads=text.get("num_key_value_heads") or heads,
                     head_dim=text.get("head_dim") or text["hidden_size"] // heads,
                     intermediate=text["intermediate_size"])
    except KeyError:
        return known
    counted = _safetensors_params(directory)
    if counted is None:
        return ModelShape(**shape, params=known.params, largest_layer=known.largest_layer) if known else None
    return ModelShape(**shape, params=counted[0], largest_layer=counted[1])


def _safetensors_params(directory: Path) -> tuple[int, int] | None:
    """(parameters, the largest module's parameters) from the safetensors headers, as DeepSpeed's
    `model_to_params` counts them on a live model; None without safetensors files."""
    modules: dict[str, int] = {}
    files = sorted(directory.glob("*.safetensors"))
    for file in files:
        with open(file, "rb") as f:
            header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
        for name, entry in header.items():
            if name != "__metadata__":
                module = name.rsplit(".", 1)[0]
                modules[module] = modules.get(module, 0) + math.prod(entry["shape"])
    return (sum(modules.values()), max(modules.values())) if modules else None


# --- the plan ----------------------------------------------------------------------------------------------------

RESIDENT = ("model states", "KL reference")


@dataclass(frozen=True)
class Term:
    name: str
    bytes: float
    how: str
    fields: tuple[str, ...] = ()   # what to change to shrink it

    @property
    def gb(self) -> float:
        return self.bytes / GB


@dataclass
class MemoryPlan:
    who: str                 # "learner rank", "rollout engine", ...
    setup: str               # how it is configured, for the heading
    terms: list[Term]
    limit_gb: float          # what the terms may add up to
    limit_how: str

    @property
    def total_gb(self) -> float:
        return sum(t.bytes for t in self.terms) / GB

    @property
    def resident_gb(self) -> float:
        """What stays on the GPU between updates (model states, the KL reference): what a colocated engine shares
        the device with; activations, logits and the sync gather exist only while the engine sleeps."""
        return sum(t.bytes for t in self.terms if t.name in RESIDENT) / GB

    @property
    def fits(self) -> bool:
        return self.total_gb <= self.limit_gb

    def render(self) -> list[str]:
        left = self.limit_gb - self.total_gb
        lines = [f"    {self.who} ({self.setup}): {self.total_gb:.1f} GB of {self.limit_gb:.1f} GB "
                 f"({self.limit_how}; {'left' if left >= 0 else 'OVER by'} {abs(left):.1f} GB)"]
        lines += [f"      {t.name:<19} {t.gb:6.1f} GB  {t.how}" for t in self.terms]
        return lines

    def problem(self) -> str | None:
        if self.fits:
            return None
        terms = sorted(self.terms, key=lambda t: -t.gb)
        fields = list(dict.fromkeys(f for t in terms[:3] for f in t.fields))
        return (f"a {self.who} needs {self.total_gb:.1f} GB of GPU memory, more than {self.limit_gb:.1f} GB "
                f"({self.limit_how}): " + " + ".join(f"{t.name} {t.gb:.1f}" for t in terms)
                + f" GB; to shrink the largest terms change {', '.join(fields)}")


def learner_memory(config, shape: ModelShape, gpus_per_node: int = 0) -> MemoryPlan:
    """One learner rank's peak (see the module docstring), against `cluster.learner.gpus` GPUs of
    `cluster.nodes.gpu_memory_gb`."""
    learner, algorithm, r = config.learner, config.algorithm, config.rollout
    b = DTYPE_BYTES[config.model.dtype]
    ranks, stage = learner.num_ranks, learner.zero_stage
    states, estimator = model_states_bytes(shape, stage, ranks, gpus_per_node, learner.offload_optimizer)
    terms = [Term("model states", states, estimator,
                  ("learner.num_ranks", "learner.zero_stage", "learner.offload_optimizer"))]
    if algorithm.kl_coef > 0:
        share = ranks if stage == 3 else 1
        terms.append(Term("KL reference", b * shape.params / share,
                          f"{config.model.dtype} weights" + (f" / {ranks} ranks (ZeRO-3 shards)" if share > 1 else
                                                             " (whole: sharded only under ZeRO-3)"),
                          ("algorithm.kl_coef", "learner.zero_stage")))
    seq, micro = config.model.max_prompt_tokens + r.max_new_tokens, micro_batch_sequences(config)
    tokens = micro * seq
    per_layer = 8 * shape.hidden + b * (3 * shape.hidden + 2 * shape.kv_heads * shape.head_dim
                                        + 4 * shape.intermediate)
    if learner.gradient_checkpointing:
        act = tokens * (shape.layers * b * shape.hidden + per_layer)
        how = (f"checkpointed: {micro} × {seq} tokens × ({shape.layers} layers' hidden states "
               f"+ one layer's {per_layer / 1e3:.0f} kB/token)")
    else:
        act = tokens * shape.layers * per_layer
        how = f"{micro} × {seq} tokens × {shape.layers} layers × {per_layer / 1e3:.0f} kB/token"
    terms.append(Term("activations", act, how,
                      (MICRO_BATCH, "learner.gradient_checkpointing", "model.max_prompt_tokens")))
    window = r.max_new_tokens + 1
    cells = micro * window * shape.vocab
    chunk, entropy = algorithm.logprob_chunk_tokens, "+entropy" if algorithm.entropy_coef > 0 else ""
    size = f"{micro} × {window} × {shape.vocab} logits"
    if chunk and not entropy:
        logits = 2 * b * cells + 4 * CHUNK_FLOAT32_BUFFERS * min(chunk, window) * shape.vocab
        how = f"{size} and their gradient in {config.model.dtype}, float32 in chunks of {chunk} positions"
    else:
        copies = LOGIT_FLOAT32_COPIES[("chunked" if chunk else "whole") + entropy]
        logits = b * cells + 4 * copies * cells
        how = (f"{size} in {config.model.dtype} + {copies:g} float32 copies at the loss's peak"
               + (" (the entropy bonus's whole log-softmax)" if entropy else ""))
    terms.append(Term("completion logits", logits, how,
                      (MICRO_BATCH, "algorithm.logprob_chunk_tokens", "rollout.max_new_tokens")))
    # ZeRO-3 gathers one bucket beyond the shard on every rank (file and NCCL paths; a weight larger than a bucket,
    # such as the embedding, is gathered alone); the NCCL path (auto may take it) also packs buckets into vLLM's two
    # send buffers on rank 0 (tracer1.engines.weight_sync).
    bucket = r.weight_sync_bucket_mb * 2**20
    gathered = max(bucket, b * shape.largest_layer) if stage == 3 else 0
    packed = 2 * bucket if r.weight_sync != "file" else 0
    if gathered + packed:
        what = " + ".join(w for w, n in ((f"{gathered / 2**20:.0f} MB gathered beyond the shard (the larger of a "
                                          "bucket and the largest weight)", gathered),
                                         (f"two {r.weight_sync_bucket_mb} MB buckets packed for NCCL", packed)) if n)
        terms.append(Term("weight-sync gather", gathered + packed, what,
                          ("rollout.weight_sync_bucket_mb", "rollout.weight_sync")))
    gpus, gpu_gb = config.cluster.learner.gpus, config.cluster.nodes.gpu_memory_gb
    return MemoryPlan("learner rank", f"ZeRO-{stage} over {ranks} rank(s)", terms,
                      (1 - HEADROOM) * gpus * gpu_gb, f"{1 - HEADROOM:.0%} of {gpus:g} × {gpu_gb:g} GB")


def micro_batch_sequences(config) -> int:
    """Sequences in one forward/backward pass of a learner rank. Stages 1-2 split a step's plans (at most
    prompts_per_step × group_size) into ranks × grad_accum_steps micro-batches (tracer1.train.batch), whatever
    `learner.micro_batch_size` says (DeepSpeed's nominal size), so the larger of the two; stage 3's decisions per
    step vary with the episodes, so its nominal size."""
    learner, r = config.learner, config.rollout
    if config.stage not in (1, 2):
        return learner.micro_batch_size
    share = -(-(r.prompts_per_step * r.group_size) // (learner.num_ranks * learner.grad_accum_steps))
    return max(learner.micro_batch_size, share)


def model_states_bytes(shape: ModelShape, stage: int, ranks: int, gpus_per_node: int = 0,
                       offload_optimizer: bool = False) -> tuple[float, str]:
    """GPU bytes of weights, gradients and optimizer states per rank by DeepSpeed's own estimators, and how."""
    per_node = min(ranks, gpus_per_node) if gpus_per_node else ranks
    nodes = -(-ranks // per_node)
    if per_node * nodes != ranks:  # the estimators only use the product; keep it exact
        per_node, nodes = ranks, 1
    if stage == 3:
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs  # noqa: PLC0415

        _, gpu, _ = estimate_zero3_model_states_mem_needs(
            total_params=shape.params, largest_layer_params=shape.largest_layer, num_gpus_per_node=per_node,
            num_nodes=nodes, cpu_offload=offload_optimizer, cpu_offload_params=False, zero_init=True)
        return gpu, (f"DeepSpeed estimate_zero3_model_states_mem_needs({shape.params / 1e9:.2f}B params, largest "
                     f"layer {shape.largest_layer / 1e9:.2f}B, {per_node} GPU(s)/node × {nodes} node(s)"
                     f"{', optimizer offloaded' if offload_optimizer else ''})")
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs  # noqa: PLC0415

    if stage == 0:  # nothing partitioned: ZeRO-2's estimate for a single GPU
        _, gpu = estimate_zero2_model_states_mem_needs(shape.params, 1, 1, cpu_offload=False)
        return gpu, f"DeepSpeed estimate_zero2_model_states_mem_needs({shape.params / 1e9:.2f}B params, 1 GPU)"
    _, gpu = estimate_zero2_model_states_mem_needs(shape.params, per_node, nodes, cpu_offload=offload_optimizer)
    how = (f"DeepSpeed estimate_zero2_model_states_mem_needs({shape.params / 1e9:.2f}B params, {per_node} GPU(s)/"
           f"node × {nodes} node(s){', optimizer offloaded' if offload_optimizer else ''})")
    if stage == 1 and not offload_optimizer:  # ZeRO-1 partitions optimizer states, not the 16-bit gradients
        gpu += int(2 * shape.params * (1 - 1 / ranks))
        how += " + stage 1's unpartitioned 16-bit gradients"
    return gpu, how


def engine_memory(who: str, section: str, config, shape: ModelShape, *, engine: str, tp: int, gpus: float,
                  utilization: float, max_model_len: int) -> MemoryPlan:
    """A rollout or executor engine, per GPU: its weights / tensor parallelism and (vLLM) the KV cache of one
    `max_model_len` sequence within `gpu_memory_utilization`."""
    b = DTYPE_BYTES[config.model.dtype]
    gpu_gb = config.cluster.nodes.gpu_memory_gb
    split = max(tp, 1) if engine == "vllm" else 1
    weights = b * shape.params / split
    terms = [Term("weights", weights, f"{config.model.dtype}" + (f" / TP {split}" if split > 1 else ""),
                  (f"{section}.tensor_parallel_size",))]
    if engine != "vllm":
        return MemoryPlan(who, f"{engine}, {gpus:g} GPU", terms, gpus * gpu_gb, f"{gpus:g} × {gpu_gb:g} GB")
    limit = utilization * gpu_gb  # GB: vLLM takes this fraction of each of its GPUs
    per_token = shape.kv_bytes_per_token(b, split)
    one = per_token * max_model_len
    terms.append(Term("KV cache, 1 seq", one, f"{per_token / 1e3:.0f} kB/token × max_model_len {max_model_len}",
                      (f"{section}.gpu_memory_utilization", f"{section}.tensor_parallel_size")))
    plan = MemoryPlan(who, f"vLLM, TP {tp}, per GPU", terms, limit,
                      f"{section}.gpu_memory_utilization {utilization:g} × {gpu_gb:g} GB")
    if plan.total_gb <= limit:
        room = int((limit * GB - weights) / one)
        plan.terms[-1] = Term("KV cache, 1 seq", one, terms[-1].how + f" (room for ~{room} such sequences, "
                              "before vLLM's activations)", terms[-1].fields)
    return plan


def render_section(demands) -> list[str]:
    """The memory plans of `demands` (one per role), for `Plan.render`."""
    plans = list({d.role: d.memory_plan for d in demands if d.memory_plan is not None}.values())
    unknown = sorted({d.role for d in demands if d.memory_plan is None and d.gpus > 0})
    if not plans and not unknown:
        return []
    lines = [f"  GPU memory at the peak (tracer1.memory; learners keep {HEADROOM:.0%} headroom):"]
    for plan in plans:
        lines += plan.render()
    lines += [f"    {role}: not estimated (model shape unknown: no config.json at its path and not one of "
              f"tracer1.memory.KNOWN_MODELS)" for role in unknown]
    return lines
