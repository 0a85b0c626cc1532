"""The VLM grounder's plumbing: prompt, image size, greedy sampling, batching and coordinate mapping, against a
test double of a grounding model that replays recorded UI-TARS-style answers (a real grounding model cannot be
downloaded here; a test with the real tiny model belongs beside tracer1.models)."""

import pytest

from tracer1.engines.base import Completion, Prompt, RolloutEngine
from tracer1.envs.base import Element, find_element
from tracer1.executors import VLMExecutor, chat_template_renderer, grounding_messages, observation_from_env
from tracer1.executors.vlm import processor_resize, step_instruction
from tracer1.plan import Step, smart_resize, to_smart_resized


class RecordedGroundingModel:
    """TEST DOUBLE of a RolloutEngine serving a grounding model: answers each prompt with a recorded answer
    string chosen by `answer(prompt)`, and records every call."""

    def __init__(self, answer):
        self.answer = answer
        self.calls: list[tuple[list[Prompt], object]] = []

    def generate(self, prompts, sampling):
        self.calls.append((list(prompts), sampling))
        return [[Completion(prompt_index=i, text=self.answer(p), token_ids=[], logprobs=[], finish_reason="stop")]
                for i, p in enumerate(prompts)]

    def update_weights(self, state):
        pass

    def sleep(self):
        pass

    def wake(self):
        pass


def plain_render(messages, images):
    """A chat template stand-in: the user turn's text, then one placeholder per image."""
    parts = [c["text"] if c["type"] == "text" else "<image>" for m in messages for c in m["content"]]
    return Prompt(text="\n".join(parts), images=tuple(images))


def _answers_by_target(answers: dict[str, str]):
    """An `answer(prompt)` that replays the answer recorded for the target named in the prompt."""
    def answer(prompt):
        for target in sorted(answers, key=len, reverse=True):
            if f"Click {target}" in prompt.text or f"into {target}" in prompt.text:
                return answers[target]
        return "I do not see it."
    return answer


def test_the_double_satisfies_the_engine_protocol():
    assert isinstance(RecordedGroundingModel(lambda p: ""), RolloutEngine)


FORMATS = [  # how UI-TARS-1.5 writes a point (x, y) of the smart-resized image
    "Action: click(start_box='<|box_start|>({x},{y})<|box_end|>')",
    "Thought: I see it.\nAction: click(start_box='({x},{y})')",
    "Action: click(point='<point>{x} {y}</point>')",
    "({x},{y})",
]


def test_grounded_clicks_land_in_the_named_element_on_builtin_screens():
    from tracer1.envs.builtin import BuiltinEnv

    env, grounded = BuiltinEnv(), 0
    for seed in range(8):
        obs, info = env.reset(seed=seed)
        while True:
            planned = env.oracle_action()
            if planned.target is not None:
                element = find_element(info["elements"], planned.target)
                x, y = to_smart_resized(element.center, 360, 640)
                answer = FORMATS[grounded % len(FORMATS)].format(x=x, y=y)
                engine = RecordedGroundingModel(lambda prompt: answer)
                execution = VLMExecutor(engine, render=plain_render).execute(planned, observation_from_env(obs, info))
                assert execution.problems == [] and execution.element == element, (planned, execution)
                assert execution.step == planned._replace(point=execution.point)
                (prompt,), sampling = engine.calls[0]
                assert prompt.images[0].size == (364, 644)   # what Qwen2.5-VL would resize 360x640 to
                assert (sampling.temperature, sampling.n, sampling.stop) == (0.0, 1, ())
                assert step_instruction(planned) in prompt.text
                grounded += 1
                obs, _, terminated, truncated, info = env.step(execution.step)
                assert info["acted_on"] == element and info["problems"] == []
            else:
                obs, _, terminated, truncated, info = env.step(planned)
            if terminated or truncated:
                break
    assert grounded >= 25


SCREEN = [Element(1, "button", "Save", (600, 900, 950, 980)), Element(2, "textbox", "Title", (50, 100, 950, 180)),
          Element(3, "item", "Ana", (0, 300, 1000, 400))]


def _observation():
    import numpy as np

    return {"screenshot": np.zeros((640, 360, 3), np.uint8), "elements": SCREEN}


def test_zero_to_thousand_answers_for_ui_tars_v1():
    engine = RecordedGroundingModel(lambda p: "Action: click(start_box='(775,940)')")
    executor = VLMExecutor(engine, render=plain_render, point_format="0-1000")
    execution = executor.execute(Step("click", target="Save"), _observation())
    assert execution.point == (775, 940) and execution.element.text == "Save"


def test_a_batch_is_one_engine_call_and_asks_once_per_distinct_step_and_screen():
    answers = {"Save": "(282,618)", "Title": "(182,90)"}
    engine = RecordedGroundingModel(_answers_by_target(answers))
    executor = VLMExecutor(engine, render=plain_render)
    screen = _observation()
    steps = [Step("click", target="Save"), Step("click", target="Save"), Step("type", target="Title", text="Hi"),
             Step("press", key="enter"), None, Step("click", target="Save", point=(10, 10))]
    out = executor.execute_many(steps, [screen] * len(steps))
    assert len(engine.calls) == 1 and len(engine.calls[0][0]) == 2   # "Save" asked once for both plans
    assert [e.element.text if e.element else None for e in out] == ["Save", "Save", "Title", None, None, None]
    assert out[2].step == Step("type", target="Title", point=out[2].point, text="Hi")
    assert out[3].step == Step("press", key="enter") and out[4].step is None and out[5].step == steps[5]
    assert all(e.seconds > 0 for e in out)


def test_an_answer_without_a_point_is_a_problem_not_an_exception():
    engine = RecordedGroundingModel(lambda p: "Thought: there is no such button.\nAction: finished()")
    execution = VLMExecutor(engine, render=plain_render).execute(Step("click", target="Save"), _observation())
    assert execution.step is None and "gave no point" in execution.problems[-1]
    assert execution.info["raw"].startswith("Thought:") and execution.info["answer"]["action"] == "finish"


def test_the_plan_decides_the_action_and_text_the_model_only_grounds():
    engine = RecordedGroundingModel(lambda p: "Action: type(start_box='(182,90)', content='something else')")
    step = Step("type", target="Title", text="Groceries")
    execution = VLMExecutor(engine, render=plain_render).execute(step, _observation())
    assert execution.step == step._replace(point=execution.point) and execution.element.text == "Title"
    assert execution.info["answer"]["text"] == "something else"


def test_out_of_range_answers_are_clamped_and_reported():
    engine = RecordedGroundingModel(lambda p: "Action: click(start_box='(9999,618)')")
    execution = VLMExecutor(engine, render=plain_render).execute(Step("click", target="Save"), _observation())
    assert execution.point[0] == 1000 and "outside" in execution.problems[0]


def test_no_screenshot_no_engine_call():
    engine = RecordedGroundingModel(lambda p: "(1,1)")
    execution = VLMExecutor(engine, render=plain_render).execute(Step("click", target="Save"), {"elements": SCREEN})
    assert execution.step is None and "screenshot" in execution.problems[0] and engine.calls == []
    call = VLMExecutor(engine, render=plain_render).execute(Step("call", tool="ocr", args=(("image", "a"),)), {})
    assert call.step is None and "toolbox" in call.problems[0]


def test_prompt_styles():
    step = Step("click", target="the Save button")
    grounding = grounding_messages(step)[0]["content"]
    assert grounding[0] == {"type": "image"} and "## User Instruction\nClick the Save button" in grounding[1]["text"]
    query = grounding_messages(step, "query")[0]["content"][1]["text"]
    assert query == "Query: the Save button. Output only the coordinate of one point."
    assert step_instruction(Step("type", target="the box", text="Paris")) == 'Type "Paris" into the box'
    assert step_instruction(Step("scroll", target="the list", direction="down")) == "Scroll down on the list"
    with pytest.raises(ValueError, match="prompt_style"):
        VLMExecutor(RecordedGroundingModel(str), render=plain_render, prompt_style="chatty")
    with pytest.raises(ValueError, match="point_format"):
        VLMExecutor(RecordedGroundingModel(str), render=plain_render, point_format="pixels")


# --- a real transformers chat template and image processor -------------------------------------------------------

QWEN_LIKE_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


class _Processor:
    """A processor-shaped object: a locally built tokenizer with a Qwen-style chat template and a real
    Qwen2-VL image processor with small pixel bounds (as a tiny grounding model would have)."""

    def __init__(self):
        from tokenizers import Tokenizer, models
        from transformers import PreTrainedTokenizerFast, Qwen2VLImageProcessor

        vocab = {t: i for i, t in enumerate(["<unk>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
                                             "<|image_pad|>", "<|vision_end|>"])}
        self.tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, "<unk>")),
                                                 unk_token="<unk>", chat_template=QWEN_LIKE_TEMPLATE)
        self.image_processor = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=200704)

    def apply_chat_template(self, messages, **kwargs):
        return self.tokenizer.apply_chat_template(messages, **kwargs)


def test_real_chat_template_and_the_processor_pixel_bounds():
    processor = _Processor()
    assert processor_resize(processor) == (28, 56 * 56, 200704)
    # the Title box's centre in pixels of the image this processor makes (336x588, not UI-TARS's 364x644)
    x, y = to_smart_resized(SCREEN[1].center, 360, 640, min_pixels=56 * 56, max_pixels=200704)
    engine = RecordedGroundingModel(lambda p: f"Action: click(start_box='({x},{y})')")
    executor = VLMExecutor(engine, processor_or_tokenizer=processor)
    execution = executor.execute(Step("click", target="Title"), _observation())
    (prompt,), _ = engine.calls[0]
    assert prompt.text.startswith("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>You are a GUI agent.")
    assert prompt.text.endswith("Click Title<|im_end|>\n<|im_start|>assistant\n")
    # The image reaches the model at the size it answers in: the processor keeps it as it is (grid x 14 px).
    height, width = smart_resize(640, 360, max_pixels=200704, min_pixels=56 * 56)
    assert prompt.images[0].size == (width, height)
    grid = processor.image_processor(images=[prompt.images[0]], return_tensors="np")["image_grid_thw"][0]
    assert (grid[1] * 14, grid[2] * 14) == (height, width)
    assert (width, height) == (336, 588) and execution.element.text == "Title" and execution.problems == []


def test_chat_template_renderer_needs_apply_chat_template():
    with pytest.raises(TypeError):
        chat_template_renderer(object())
