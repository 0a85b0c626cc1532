"""`ExecutorWorker` with the VLM (UI-TARS-style) executor, as stage 2 builds it from `executor.*`: the grounding
model served by a real transformers engine (the tiny VL planner stands in for UI-TARS, which cannot be
downloaded here), its answer read into the grounded first step; and the vLLM branch's settings."""

from __future__ import annotations

import pytest
import torch
from tiny_planners import scripted

from tracer1.config import ExecutorConfig
from tracer1.data.synthetic import generate_samples
from tracer1.engines.hf import HFEngine
from tracer1.executors.worker import ExecutorWorker, FirstStep
from tracer1.models.tiny import build_tiny_planner
from tracer1.plan import Step, format_step


@pytest.fixture(scope="module")
def grounder_dir(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is faster on a busy 2-core machine
    yield build_tiny_planner(tmp_path_factory.mktemp("grounder") / "vl", kind="vl", seed=0)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def sound_screen():
    """A built-in Settings screen whose oracle next step is click(target="Sound") (a 360 × 640 screenshot)."""
    return next(s for s in generate_samples(2, seed=3, horizon=10) if s.future[0] == Step("click", target="Sound"))


def test_a_vlm_executor_grounds_the_first_step_with_its_model(grounder_dir, sound_screen):
    worker = ExecutorWorker(ExecutorConfig(kind="vlm", model_path=str(grounder_dir)))
    engine = worker.executor.engine
    assert isinstance(engine, HFEngine) and engine.bundle.path == str(grounder_dir)
    # The screen reaches the model smart-resized within the processor's bounds (28 px patches, ≤ 50176 px):
    # 360 × 640 → 168 × 280. Make the model answer "(100,200)" in those pixels: x = 100/168, y = 200/280 of the
    # screen, i.e. (595, 714) on the 0..1000 grid.
    assert (worker.executor.factor, worker.executor.max_pixels) == (28, 50176)
    answer = engine.bundle.tokenizer.encode("(100,200)", add_special_tokens=False) + [engine.bundle.eos_token_ids[0]]
    plan = format_step(Step("click", target="Sound")) + "\n" + format_step(Step("click", target="Volume"))
    with scripted(engine.bundle.model, [answer]):
        out = worker.first_steps([(plan, sound_screen), ("no step here", sound_screen),
                                  (format_step(Step("press", key="back")), sound_screen)])
    assert out == [FirstStep(Step("click", target="Sound", point=(595, 714))),  # grounded by the model
                   FirstStep(None),                                            # nothing to execute
                   FirstStep(Step("press", key="back"))]                       # nothing to ground
    unscripted = worker.first_steps([(plan, sound_screen)])  # the random model's own answer: an execution or
    assert len(unscripted) == 1 and (unscripted[0][0] is None or unscripted[0][0].point is not None)  # none


class RecordingVLLMEngine:
    """FAKE of VLLMEngine (vLLM cannot run in this venv): records its arguments, generates nothing."""

    made: list = []

    def __init__(self, model, **kwargs):
        self.made.append((model, kwargs))


def test_on_vllm_the_executor_engine_takes_the_executor_settings(grounder_dir, monkeypatch):
    monkeypatch.setattr("tracer1.engines.vllm.VLLMEngine", RecordingVLLMEngine)
    cfg = ExecutorConfig(kind="vlm", model_path=str(grounder_dir), engine="vllm", tensor_parallel_size=2,
                         gpu_memory_utilization=0.6)
    worker = ExecutorWorker(cfg, dtype="bfloat16", seed=5)
    # sized for one screenshot at the processor's bound (50176 px / 28² = 64 tokens), its text and its answer
    assert RecordingVLLMEngine.made == [(str(grounder_dir), {"dtype": "bfloat16", "seed": 5,
                                                             "tensor_parallel_size": 2,
                                                             "gpu_memory_utilization": 0.6,
                                                             "max_model_len": 64 + 1024 + cfg.max_new_tokens,
                                                             "limit_mm_per_prompt": {"image": 1, "video": 0}})]
    assert isinstance(worker.executor.engine, RecordingVLLMEngine)
    assert worker.executor.max_pixels == 50176  # the chat template and image bounds: the model's own processor


def test_the_other_executors_hold_no_model():
    worker = ExecutorWorker(ExecutorConfig(kind="a11y"))
    assert not hasattr(worker.executor, "engine")


def test_online_stage_2_grounds_with_the_same_model_in_the_live_world(grounder_dir, sound_screen):
    """`LiveExecutorWorker` (env.grounding=online) builds the grounding engine the same way and hands it to the
    executor of each source; the grounded click then runs in the live built-in world, whose feedback comes back."""
    from tracer1.config import EnvConfig  # noqa: PLC0415
    from tracer1.executors.live import LiveExecutorWorker  # noqa: PLC0415

    live = LiveExecutorWorker(ExecutorConfig(kind="vlm", model_path=str(grounder_dir)), EnvConfig())
    try:
        engine = live.executor("builtin").engine
        assert isinstance(engine, HFEngine) and engine.bundle.path == str(grounder_dir)

        def answer(text: str) -> list[int]:
            return engine.bundle.tokenizer.encode(text, add_special_tokens=False) + [engine.bundle.eos_token_ids[0]]

        step = format_step(Step("click", target="Sound"))
        # The Sound row spans y 388..475 on the grid. (84, 121) in the model's 168 × 280 pixels is (500, 432):
        # on the row, so the live world opens Sound, as the reference does. (100, 200) is (595, 714): below it.
        with scripted(engine.bundle.model, [answer("(84,121)")]):
            [(executed, _, feedback, _)] = live.first_steps([(step, sound_screen)])
        assert executed == Step("click", target="Sound", point=(500, 432))
        assert feedback.executed and feedback.matches_reference
        with scripted(engine.bundle.model, [answer("(100,200)")]):
            [(executed, _, feedback, _)] = live.first_steps([(step, sound_screen)])
        assert executed.point == (595, 714)
        assert not feedback.executed and feedback.problems == ("nothing on screen at (595, 714)",)
    finally:
        live.close()


def test_one_bad_completion_or_sample_fails_alone(sound_screen, monkeypatch):
    """A plan whose reading raises, a sample whose observation cannot be built and a step the executor raises on
    each get no executed step; the other plans of the batch are still executed."""
    import tracer1.executors.worker as worker_module  # noqa: PLC0415

    real_parse = worker_module.parse_plan

    def parse(text):
        if text == "RAISE":
            raise OverflowError("bad")
        return real_parse(text)

    monkeypatch.setattr(worker_module, "parse_plan", parse)
    worker = ExecutorWorker(ExecutorConfig(kind="a11y"))
    real_execute = worker.executor.execute

    def execute(step, observation):
        if step.target == "BOOM":
            raise RuntimeError("executor bug")
        return real_execute(step, observation)

    monkeypatch.setattr(worker.executor, "execute", execute)
    plan = "<plan>\n" + "1. " + format_step(Step("click", target="Sound")) + "\n</plan>"
    boom = "<plan>\n1. click(target=\"BOOM\")\n</plan>"
    out = worker.first_steps([(plan, sound_screen), ("RAISE", sound_screen), (plan, object()), (boom, sound_screen),
                              (plan, sound_screen)])
    assert out[1] == out[2] == out[3] == FirstStep(None)
    assert out[0] == out[4] == worker.first_steps([(plan, sound_screen)])[0] and out[0][0] is not None
