"""scripts/gpu_smoke.py runs its CPU-possible checks in CI, so the script a GPU machine runs cannot rot: the same
code path (engine → prompt ids → learner log-probs → GRPO step → bucketed weight sync) with the transformers engine
and a gloo ZeRO-3 learner standing in for vLLM and the GPU."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CPU_CHECKS = ("build tiny Qwen2.5-VL", "serve with image prompts", "prompt ids engine = learner",
              "ZeRO-3 learner + reference", "log-probs engine = learner", "one GRPO step", "weight sync in buckets")


@pytest.mark.slow
def test_the_smoke_script_passes_every_cpu_check_and_names_what_needs_a_gpu(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_smoke.py"), "--device", "cpu", "--out",
                          str(tmp_path)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    lines = {line[6:34].strip(): line for line in out.stdout.splitlines() if line[:4] in ("PASS", "FAIL", "SKIP")}
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    for check in CPU_CHECKS:
        assert lines[check].startswith("PASS"), lines[check]
    assert lines["tracer1.run, fractional GPUs"].startswith("SKIP") and "GPU" in lines["tracer1.run, fractional GPUs"]
    sync = lines["weight sync in buckets"]
    assert "buckets; gap" in sync  # the gap the step opened and the sync closed, measured


def test_a_failing_check_fails_the_script_and_the_rest_still_run(capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    import gpu_smoke

    checks = gpu_smoke.Checks()

    def broken():
        raise RuntimeError("no device")

    assert checks.run("broken", broken) is None
    assert checks.run("fine", lambda: (True, "ok", 7)) == 7
    printed = capsys.readouterr().out
    assert "FAIL  broken" in printed and "RuntimeError: no device" in printed and "PASS  fine" in printed
    assert checks.failed == 1
