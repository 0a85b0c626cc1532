"""Setting up torch.distributed for the learner ranks: gloo on CPU, NCCL on GPU, one process per rank.

Under Ray each rank is an actor; rank 0 picks the rendezvous address and port and the driver hands them to all
ranks. A single-process learner (tests, SFT on a laptop) is world size 1 on a free local port."""

from __future__ import annotations

import os
import socket

import torch


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the usual rendezvous race is accepted: ranks start together)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def resolve_backend(backend: str) -> str:
    """'auto' → NCCL when CUDA is usable, else gloo."""
    if backend == "auto":
        return "nccl" if torch.cuda.is_available() else "gloo"
    return backend


def init_process_group(rank: int = 0, world_size: int = 1, *, backend: str = "auto", master_addr: str = "127.0.0.1",
                       master_port: int | None = None) -> str:
    """Join (or create) the learner's process group through DeepSpeed; returns the backend in use.

    Idempotent: a process that already has a group keeps it (several learners in one test process)."""
    backend = resolve_backend(backend)
    if backend == "gloo":
        # DeepSpeed picks its accelerator at import time; on CPU it must be told before the first import.
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed  # noqa: PLC0415 — after DS_ACCELERATOR is set

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_backend()
    os.environ.update({
        "RANK": str(rank), "LOCAL_RANK": str(rank if backend == "gloo" else 0), "WORLD_SIZE": str(world_size),
        "MASTER_ADDR": master_addr, "MASTER_PORT": str(master_port or free_port(master_addr)),
    })
    deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False, verbose=False)
    return backend
