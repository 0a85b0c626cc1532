"""The prompt-id comparison between an engine and the learner (tracer1.engines.prompt_ids), on a hand-made
mismatch of the kind a vision-language prompt can have: the same prompt encoded by the tiny planner's processor with
the screenshot at two sizes, so the image expands to a different number of placeholder tokens."""

from __future__ import annotations

import pytest
from PIL import Image

from tracer1.engines.base import Prompt
from tracer1.engines.prompt_ids import compare_prompt_ids, first_difference, placeholder_ids
from tracer1.models.inputs import encode_prompt
from tracer1.models.loading import load_planner
from tracer1.models.prompt import build_prompt
from tracer1.models.tiny import build_tiny_planner


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return load_planner(build_tiny_planner(tmp_path_factory.mktemp("prompt-ids") / "vl", kind="vl"), load_model=False)


def test_equal_ids_give_no_report_and_the_first_difference_is_found():
    assert compare_prompt_ids([1, 2, 3], [1, 2, 3]) is None
    assert first_difference([1, 2, 3], [1, 9, 3]) == 1
    assert first_difference([1, 2, 3], [1, 2]) == 2  # a prefix differs where it ends
    report = compare_prompt_ids(list(range(20)), list(range(10)) + [99] + list(range(11, 20)), window=2)
    assert report.splitlines() == ["prompt ids differ at position 10: learner 20 tokens, engine 20 tokens",
                                   "  learner [8:13] [8, 9, 10, 11, 12]",
                                   "  engine  [8:13] [8, 9, 99, 11, 12]"]


def test_a_different_image_expansion_is_reported_with_positions_tokens_and_placeholder_counts(bundle):
    prompt = build_prompt(bundle, instruction="open the settings", screenshot=Image.new("RGB", (360, 640)),
                          horizon=3, max_image_pixels=28 * 28 * 40)
    learner = list(encode_prompt(bundle, prompt).input_ids)
    # the "engine" sized the same screenshot larger: more image tokens
    bigger = Prompt(text=prompt.text, images=(prompt.images[0].resize((prompt.images[0].width + 56,
                                                                        prompt.images[0].height)),))
    engine = list(encode_prompt(bundle, bigger).input_ids)
    pad = placeholder_ids(bundle.tokenizer)["<|image_pad|>"]
    assert learner.count(pad) < engine.count(pad)

    report = compare_prompt_ids(learner, engine, bundle.tokenizer)
    at = first_difference(learner, engine)
    lines = report.splitlines()
    assert lines[0] == f"prompt ids differ at position {at}: learner {len(learner)} tokens, engine {len(engine)} tokens"
    assert learner[:at] == engine[:at] and learner[at] != engine[at]
    assert lines[1].startswith(f"  learner [{at - 6}:{at + 7}] ") and "'<|image_pad|>'" in lines[1]  # decoded
    assert lines[2].startswith(f"  engine  [{at - 6}:{at + 7}] ")
    assert (f"<|image_pad|>: learner {learner.count(pad)}, engine {engine.count(pad)}" in lines[3]
            and "<|vision_start|>: learner 1, engine 1" in lines[3])
    assert "the image expanded to a different number of tokens" in lines[4]
