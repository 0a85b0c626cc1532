"""`ExecutorWorker`: the plain class inside each executor actor of stage 2. It runs the first step of each
sampled plan through the frozen executor against the sample's observation and returns what the stage-2 reward
scores: the grounded step and its result (None when the plan had no readable first step or nothing could be
executed).

With `executor.kind=vlm` (UI-TARS-style grounding) the worker also holds the grounding model's engine
(`grounding_engine`): vLLM when `executor.engine=vllm` (GPUs; `tensor_parallel_size` and
`gpu_memory_utilization` from the executor config), transformers otherwise. The model runs in `dtype`, the
run's `model.dtype`, which is also what `--plan` (tracer1.placement) sizes the executor's GPU memory by."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from tracer1.executors.base import make_executor, observation_from_sample
from tracer1.plan import Step, parse_plan

if TYPE_CHECKING:
    from tracer1.rewards.live import LiveFeedback

log = logging.getLogger(__name__)


def grounding_engine(executor_cfg, *, dtype: str = "float32", seed: int = 0):
    """The engine serving `executor.model_path` for a VLM executor, with the prompt side its chat template needs
    (-> (engine, processor or tokenizer)): the processor has the image bounds the grounder resizes screens by."""
    if executor_cfg.engine == "vllm":
        from tracer1.engines.vllm import VLLMEngine  # noqa: PLC0415 — vLLM only where it is installed
        from tracer1.engines.vllm_args import executor_engine_args  # noqa: PLC0415
        from tracer1.executors.vlm import processor_resize  # noqa: PLC0415
        from tracer1.models.loading import load_planner  # noqa: PLC0415
        from tracer1.plan.coords import SMART_RESIZE_FACTOR, UITARS_MAX_PIXELS  # noqa: PLC0415

        prompt_side = load_planner(executor_cfg.model_path, load_model=False)  # vLLM holds the weights
        # the most one screenshot expands to: the bounds VLMExecutor resizes by (the processor's, else UI-TARS's)
        factor, _, max_pixels = processor_resize(prompt_side.processor) or (SMART_RESIZE_FACTOR, 0, UITARS_MAX_PIXELS)
        engine = VLLMEngine(executor_cfg.model_path, **executor_engine_args(
            executor_cfg, dtype=dtype, seed=seed, image_tokens=max_pixels // (factor * factor)))
    else:
        from tracer1.engines.hf import HFEngine  # noqa: PLC0415

        engine = HFEngine(executor_cfg.model_path, dtype=dtype)
        prompt_side = engine.bundle
    return engine, prompt_side.processor if prompt_side.processor is not None else prompt_side.tokenizer


def _not_executed(i: int, total: int, exc: Exception) -> None:
    log.warning("plan %d of %d: no executed step (%s: %s)", i, total, type(exc).__name__, exc)


class FirstStep(NamedTuple):
    """One plan's first step as an executor worker ran it: what the stage-2 reward scores. Both workers
    (`ExecutorWorker` offline, `LiveExecutorWorker` online) answer one per (plan, sample)."""

    step: Step | None                       # the grounded step (with its point); None: nothing was executed
    result: str | None = None               # a tool's output or an answer's text
    feedback: LiveFeedback | None = None    # online: the live env's answer, scored by `live_reward`; else None
    fell_back: bool = False                 # online: the sample could not be restored, so it ran offline


class ExecutorWorker:
    def __init__(self, executor_cfg, env_cfg=None, *, dtype: str = "float32", seed: int = 0):
        """`dtype`, `seed`: the grounding model's (kind=vlm only; the other executors hold no model)."""
        options = {}
        if executor_cfg.kind == "vlm":
            engine, processor = grounding_engine(executor_cfg, dtype=dtype, seed=seed)
            options = {"engine": engine, "processor_or_tokenizer": processor}
        self.executor = make_executor(executor_cfg, env_config=env_cfg, **options)

    def first_steps(self, pairs: Sequence[tuple[str, object]]) -> list[FirstStep]:
        """A `FirstStep` (grounded first step, result) for each (plan text, planning sample): the plan's first step
        executed on the sample's observation (one batch: a VLM executor asks its model once per distinct step and
        screen). A plan, sample or step that raises gets `FirstStep(None)`, logged with the error; the others go
        on."""
        todo, steps, observations = [], [], []
        for i, (plan, sample) in enumerate(pairs):
            try:
                first = parse_plan(plan).steps[:1]
                if first:
                    observations.append(observation_from_sample(sample))
                    steps.append(first[0])
                    todo.append(i)
            except Exception as exc:  # noqa: BLE001 — one bad completion must not fail the batch
                _not_executed(i, len(pairs), exc)
        try:
            executions = self.executor.execute_many(steps, observations)
        except Exception:  # noqa: BLE001 — find the step that raised: one at a time, each failing alone
            executions = [self._execute_one(i, s, o, len(pairs)) for i, s, o in zip(todo, steps, observations)]
        out = [FirstStep(None)] * len(pairs)
        for i, execution in zip(todo, executions):
            if execution is not None:
                out[i] = FirstStep(execution.grounded_step, execution.result)
        return out

    def _execute_one(self, i: int, step: Step, observation, total: int):
        try:
            return self.executor.execute_many([step], [observation])[0]
        except Exception as exc:  # noqa: BLE001
            _not_executed(i, total, exc)
            return None

    def close(self) -> None:
        self.executor.close()
