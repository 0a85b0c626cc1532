"""The NCCL weight sync's contract with vLLM's weight-transfer API (vllm.distributed.weight_transfer, vLLM 0.32), the
parts that run without a GPU: vLLM's own dataclasses accept the payloads tracer1 sends its workers, the engine
arguments carry the transfer config, and the stream the learner packs (`sent_tensors`) comes out of vLLM's packer
and unpacker as the tensors the update info declares, chunk boundaries included. The NCCL broadcast itself needs
GPUs (two ranks on two devices) and is not run here."""

from __future__ import annotations

import math

import pytest
import torch
from vllm.distributed.weight_transfer.nccl_engine import NCCLWeightTransferInitInfo, NCCLWeightTransferUpdateInfo
from vllm.distributed.weight_transfer.packed_tensor import pack_tensors, unpack_tensor
from vllm.engine.arg_utils import EngineArgs

from tracer1.engines.weight_sync import (
    TRANSFER_CONFIG, plan_buckets, sent_tensors, transfer_init_info, transfer_update_info,
)


def test_vllm_parses_the_init_and_update_payloads():
    init = NCCLWeightTransferInitInfo(**transfer_init_info("10.0.0.1", 29500, 3, 5, 1 << 20))
    assert (init.rank_offset, init.world_size, init.packed, init.packed_buffer_size_bytes) == (3, 5, True, 1 << 20)
    plan = plan_buckets([("w", (3, 5), torch.float32), ("b", (7,), torch.bfloat16)], 64)
    update = NCCLWeightTransferUpdateInfo(**transfer_update_info(plan))
    assert (update.names, update.dtype_names, update.shapes) == (["w", "b"], ["float32", "bfloat16"], [[3, 5], [7]])
    assert EngineArgs(model="unused", weight_transfer_config=dict(TRANSFER_CONFIG)).weight_transfer_config.backend \
        == "nccl"


def consumer_chunks(update: dict, buffer_size_bytes: int) -> list[list[tuple[str, list[int], torch.dtype, int]]]:
    """The chunks vLLM's `packed_nccl_broadcast_consumer` cuts from the update info (its loop, without NCCL):
    tensors are added until the running size passes the buffer size."""
    chunks, current, size = [], [], 0
    for name, dtype_name, shape in zip(update["names"], update["dtype_names"], update["shapes"]):
        dtype = getattr(torch, dtype_name)
        nbytes = math.prod(shape) * dtype.itemsize
        current.append((name, shape, dtype, nbytes))
        size += nbytes
        if size > buffer_size_bytes:
            chunks.append(current)
            current, size = [], 0
    return chunks + ([current] if current else [])


def test_the_learners_stream_unpacks_on_the_workers_into_the_same_tensors():
    torch.manual_seed(0)
    tensors = {f"model.layers.{i}.w": torch.randn(4, 8).to(torch.bfloat16 if i % 2 else torch.float32)
               for i in range(5)}
    tensors["lm_head.weight"] = torch.randn(16, 8)
    plan = plan_buckets([(n, tuple(t.shape), t.dtype) for n, t in tensors.items()], 200)  # gather units
    buffer_size = 150  # vLLM's packed chunks: independent of the gather units
    stream = sent_tensors((b, tensors) for b in plan)
    packed = []
    with pytest.warns(UserWarning, match="'lm_head.weight' has size 512 bytes"):  # larger than a chunk: sent whole
        while (chunk := pack_tensors(stream, lambda item: item[1], buffer_size)) is not None:
            packed.append(chunk.packed_tensor)
    expected = consumer_chunks(transfer_update_info(plan), buffer_size)
    assert len(packed) == len(expected) > 2
    received = {}
    for flat, meta in zip(packed, expected):
        names, shapes, dtypes, sizes = (list(x) for x in zip(*meta))
        assert flat.numel() == sum(sizes)  # the worker's receive buffer has the sender's chunk size
        received.update(unpack_tensor(flat, names, shapes, dtypes, sizes))
    assert list(received) == list(tensors)
    assert all(received[n].dtype == t.dtype and torch.equal(received[n], t) for n, t in tensors.items())
