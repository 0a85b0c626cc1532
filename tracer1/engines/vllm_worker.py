"""Worker-side half of `VLLMEngine.update_weights`: a vLLM worker extension class.

vLLM mixes this class into each of its worker processes (`LLM(worker_extension_cls=...)`), so its methods run
next to the model and are reached with `LLM.collective_rpc(method_name, args=...)`. Method names carry a
`tracer1_` prefix because vLLM refuses an extension whose attributes clash with the worker's own.

Weights travel as one safetensors file (written by the engine, preferably on /dev/shm): every worker of a
tensor-parallel group reads the same file lazily, tensor by tensor, so nothing large goes through vLLM's RPC
queue. They are loaded with `reload_weights(weights_iterator=...)`, vLLM's in-place reload, which runs the
model's own `load_weights` (HF names → vLLM's fused q/k/v and gate/up parameters, tied embeddings) and then
re-runs the per-layer post-load processing. Calling `model.load_weights` directly is not enough on CPU: vLLM's
CPU build repacks linear weights after loading, and a plain `load_weights` leaves the repacked copies stale.

This module is imported inside vLLM workers only; it must not import vllm at module level either (it is also
imported by the main-venv tests through `tracer1.engines`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def iter_safetensors(path: str) -> Iterator[tuple[str, Any]]:
    """(name, tensor) pairs of a safetensors file, read one at a time onto the CPU."""
    from safetensors import safe_open

    with safe_open(path, framework="pt", device="cpu") as f:
        for name in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
            yield name, f.get_tensor(name)


class WeightLoader:
    """Mixed into vLLM's worker class; `self` is the worker (it has `model_runner`)."""

    def tracer1_reload_weights(self, path: str) -> int:
        """Load the HF-named tensors of `path` into the running model in place; returns how many were read."""
        count = 0

        def weights() -> Iterator[tuple[str, Any]]:
            nonlocal count
            for name, tensor in iter_safetensors(path):
                count += 1
                yield name, tensor

        reload = getattr(self, "reload_weights", None)  # the worker's wrapper sets vLLM's current config
        if reload is not None:
            reload(weights_iterator=weights())
        else:
            self.model_runner.reload_weights(weights_iterator=weights())  # type: ignore[attr-defined]
        return count

    def tracer1_weight_checksum(self) -> float:
        """Sum of |w| over every parameter of the loaded model (tests: did an update land?)."""
        model = self.model_runner.get_model()  # type: ignore[attr-defined]
        return float(sum(p.detach().float().abs().sum().item() for p in model.parameters()))

    def tracer1_torch_threads(self) -> int:
        """The worker's torch thread count (vLLM pins CPU workers to cores; benchmarks report it)."""
        import torch

        return torch.get_num_threads()
