"""Planner models: tiny ones built from a config (`tiny`), loading any checkpoint (`loading`), the planner
prompt and SFT target (`prompt`), and prompts + completions as tensors (`inputs`).

Submodules import transformers lazily or on import; this package itself imports nothing heavy."""
