"""Imported before every test module: `import tracer1` first, so OpenMP's wait policy is set before any test
module imports torch (see tracer1/__init__.py)."""

import tracer1  # noqa: F401
