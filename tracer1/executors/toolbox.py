"""The toolbox executor: runs a plan's `call(tool=..., ...)` step with the toolbox world's tools and reports the
tool's output; `answer` steps pass through with their text as the result.

    executor = ToolboxExecutor()
    ex = executor.execute(Step("call", tool="ocr", args=(("image", "img0"),)), {"images": task.images})
    ex.result      # "CORNER SHOP\\nCoffee $3.50\\n..."

Tools come from `tracer1.envs.toolbox.tools` (ocr, calculator, count, python), called exactly as `ToolboxEnv`
calls them (`call_tool`), so an offline result equals what the live env would return; model-written Python
runs in the toolbox sandbox under `python_timeout_s` / `python_memory_mb`. Image arguments name the
observation's `images` (`observation_from_env(..., env=toolbox_env)`, or `sample_images(sample)` for a
toolbox planning sample). A call the tools cannot carry out (unknown tool, bad arguments, failing code) is
still a step the env would take: `step` is the call, `result` is the env's "error: <why>" text and the reason
is in `problems`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tracer1.executors.base import Execution, Executor, passthrough
from tracer1.plan import Step


class ToolboxExecutor(Executor):
    """Executes tool calls and answers (see the module docstring). GUI steps are not executed here."""

    kind = "toolbox"

    def __init__(self, python_timeout_s: float = 10.0, python_memory_mb: int = 512):
        self.python_timeout_s, self.python_memory_mb = python_timeout_s, python_memory_mb

    def _execute(self, step: Step, observation: Mapping[str, Any]) -> Execution:
        from tracer1.envs.toolbox.tools import call_tool  # the tools pull in OCR fonts and the sandbox

        if step.action in ("answer", "finish"):
            return passthrough(step, observation)
        if step.action != "call":
            return Execution(step, None, problems=[f"the toolbox executor runs call(tool=...) and answer(text=...) "
                                                   f"steps, not {step.action}"])
        images = observation.get("images") or {}
        outcome = call_tool(step.tool, step.args, images, python_timeout_s=self.python_timeout_s,
                            python_memory_mb=self.python_memory_mb)
        problems = [] if outcome.ok else [f"{step.tool}: {outcome.error}"]
        return Execution(step, step, result=outcome.text, problems=problems, info={"tool": step.tool,
                                                                                   "ok": outcome.ok})


def sample_images(sample) -> dict[str, Any] | None:
    """The images of a toolbox planning sample, regenerated from its task (family, seed and split in `meta`;
    tasks are deterministic), or None when the sample does not say which task it is. Cropping them out of the
    screenshot would not do: panel boxes are stored on the 0..1000 grid, a pixel off at the edges."""
    from tracer1.envs.toolbox.tasks import FAMILIES, make_task

    meta = sample.meta or {}
    family, seed = meta.get("task"), meta.get("seed")
    if family not in FAMILIES or not isinstance(seed, int):
        return None
    task = make_task(seed, family, sample.split)
    if meta.get("task_id") not in (None, task.id):
        return None
    return dict(task.images)
