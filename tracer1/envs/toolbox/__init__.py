"""The toolbox world: tool-use tasks over generated images (receipts, price tags, signs, shape scenes) whose
answers need chains of 2-4 tool calls, the tools themselves, and the sandbox that runs model-written Python.

* `tools` — `TOOLS` (ocr, calculator, count, python) and `call_tool`, which never raises;
* `sandbox` — `Sandbox` / `run_python`: a fresh interpreter per run behind several layers (see its docstring);
* `ocr`, `vision`, `font`, `calculator`, `images` — what the tools and images are made of;
* `tasks` — `make_task(seed, family)`: a question, its images, the gold trajectory and the GTA-style answer;
* `env` — `ToolboxEnv`, the gymnasium env; `samples` — `generate_samples` and the CLI
  (`python -m tracer1.envs.toolbox --episodes N --out DIR`).
"""

from tracer1.envs.toolbox.env import ToolboxEnv
from tracer1.envs.toolbox.sandbox import Sandbox, SandboxLimits, SandboxResult, run_python
from tracer1.envs.toolbox.samples import generate_samples
from tracer1.envs.toolbox.tasks import FAMILIES, Task, make_task
from tracer1.envs.toolbox.tools import TOOLS, Tool, ToolResult, call_tool

__all__ = ["FAMILIES", "TOOLS", "Sandbox", "SandboxLimits", "SandboxResult", "Task", "Tool", "ToolResult",
           "ToolboxEnv", "call_tool", "generate_samples", "make_task", "run_python"]
