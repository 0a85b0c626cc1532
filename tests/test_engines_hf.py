"""The transformers engine (`tracer1.engines.hf`): the log-probs it reports are the teacher-forced ones the
learner computes (what GRPO relies on), prompts are tokenised exactly as for training, sampling is seeded,
stop strings / EOS / length end completions as documented, banned tokens are never sampled, and
`update_weights` changes what it generates."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from tracer1.engines.base import Completion, Prompt, RolloutEngine, Sampling
from tracer1.engines.hf import HFEngine
from tracer1.models.inputs import completion_logprobs, encode_for_training, encode_prompts
from tracer1.models.prompt import build_prompt

from tiny_planners import (  # noqa: F401  (fixtures)
    biased, one_thread, samples, scripted, text_bundle, tiny_dirs, vl_bundle,
)

SMALL_IMAGE = 28 * 28 * 8  # 8 image tokens: keeps the VL prompts short on CPU


@pytest.fixture(scope="module")
def text_engine(text_bundle):
    return HFEngine(text_bundle)


@pytest.fixture(scope="module")
def vl_engine(vl_bundle):
    return HFEngine(vl_bundle)


@pytest.fixture(scope="module")
def text_prompts(text_bundle, samples):
    return [build_prompt(text_bundle, instruction=s.instruction, history=s.history, horizon=3)
            for s in samples[:2]]


@pytest.fixture(scope="module")
def vl_prompts(vl_bundle, samples):
    return [build_prompt(vl_bundle, instruction=s.instruction, screenshot=s.screenshot, horizon=3,
                         max_image_pixels=SMALL_IMAGE) for s in samples[:2]]


def flat(groups: list[list[Completion]]) -> list[Completion]:
    return [c for group in groups for c in group]


def assert_teacher_forced(bundle, prompts, groups):
    """The engine's log-probs equal one teacher-forced forward over prompt + completion, and its prompt ids are
    the training prompt ids."""
    completions = flat(groups)
    batch = encode_for_training(bundle, [prompts[c.prompt_index] for c in completions],
                                [c.token_ids for c in completions])
    with torch.no_grad():
        logp = completion_logprobs(bundle.model, batch)
    for row, c in enumerate(completions):
        prompt_len = len(c.prompt_token_ids)
        assert batch["input_ids"][row, :prompt_len].tolist() == c.prompt_token_ids  # no drift
        assert len(c.logprobs) == len(c.token_ids) > 0
        expected = logp[row, prompt_len:prompt_len + len(c.token_ids)]
        torch.testing.assert_close(torch.tensor(c.logprobs), expected, atol=1e-4, rtol=0)


def test_it_is_a_rollout_engine(text_engine):
    assert isinstance(text_engine, RolloutEngine)


def test_sampled_logprobs_equal_a_teacher_forced_pass_text(text_bundle, text_engine, text_prompts):
    groups = text_engine.generate(text_prompts, Sampling(n=3, temperature=1.0, top_p=0.9, seed=0, max_new_tokens=20))
    assert [len(g) for g in groups] == [3, 3] and all(c.prompt_index == i for i, g in enumerate(groups) for c in g)
    assert_teacher_forced(text_bundle, text_prompts, groups)


def test_sampled_logprobs_equal_a_teacher_forced_pass_vl_with_images(vl_bundle, vl_engine, vl_prompts):
    assert all(len(p.images) == 1 for p in vl_prompts)
    groups = vl_engine.generate(vl_prompts, Sampling(n=2, temperature=1.0, seed=1, max_new_tokens=12))
    assert_teacher_forced(vl_bundle, vl_prompts, groups)
    image_tokens = flat(groups)[0].prompt_token_ids.count(vl_bundle.image_token_id)
    assert image_tokens == (vl_prompts[0].images[0].width // 28) * (vl_prompts[0].images[0].height // 28)


def test_the_same_seed_gives_the_same_samples_and_leaves_the_callers_rng_alone(text_engine, text_prompts):
    sampling = Sampling(n=4, temperature=1.0, seed=7, max_new_tokens=10)
    torch.manual_seed(99)
    expected_rng = torch.rand(2)
    torch.manual_seed(99)
    first = [c.token_ids for c in flat(text_engine.generate(text_prompts, sampling))]
    assert torch.equal(torch.rand(2), expected_rng)
    again = [c.token_ids for c in flat(text_engine.generate(text_prompts, sampling))]
    other = [c.token_ids for c in flat(text_engine.generate(text_prompts, Sampling(
        n=4, temperature=1.0, seed=8, max_new_tokens=10)))]
    assert first == again and first != other
    assert len({tuple(ids) for ids in first[:4]}) > 1  # n samples of one prompt differ


def test_temperature_zero_is_greedy_and_independent_of_batching(text_bundle, text_engine, text_prompts):
    groups = text_engine.generate(text_prompts, Sampling(n=3, temperature=0, max_new_tokens=12))
    for group in groups:
        assert len(group) == 3 and all(c.token_ids == group[0].token_ids for c in group)
        assert group[1] is not group[0] and group[1].token_ids is not group[0].token_ids
    one_by_one = HFEngine(text_bundle, max_batch_size=1).generate(text_prompts, Sampling(
        temperature=0, max_new_tokens=12))
    assert [g[0].token_ids for g in one_by_one] == [g[0].token_ids for g in groups]
    assert_teacher_forced(text_bundle, text_prompts, groups)


def test_stop_strings_eos_and_length_end_completions(text_bundle, text_engine, text_prompts):
    tok = text_bundle.tokenizer
    stop_script = tok("<plan>\n1. wait()\n</plan>\nmore text", add_special_tokens=False)["input_ids"]
    eos_script = tok("<plan>\n1. wait()", add_special_tokens=False)["input_ids"] + [text_bundle.end_of_turn_id]
    filler = tok("a", add_special_tokens=False)["input_ids"] * 40
    prompts = [text_prompts[0], text_prompts[1], text_prompts[0]]
    with scripted(text_bundle.model, [stop_script, eos_script, filler]):
        stopped, ended, cut = flat(text_engine.generate(prompts, Sampling(temperature=0, max_new_tokens=16)))
    assert stopped.finish_reason == "stop" and stopped.text == "<plan>\n1. wait()\n</plan>"
    assert stopped.token_ids == stop_script[:len(stopped.token_ids)]  # ends at the token completing </plan>
    assert "</plan>" in tok.decode(stopped.token_ids) and "</plan>" not in tok.decode(stopped.token_ids[:-1])
    assert ended.finish_reason == "stop" and ended.token_ids == eos_script  # EOS kept in the ids...
    assert ended.text == "<plan>\n1. wait()"                                 # ...not in the text
    assert cut.finish_reason == "length" and len(cut.token_ids) == 16 and cut.text == "a" * 16
    with scripted(text_bundle.model, [stop_script]):  # without stop strings, </plan> does not end it
        (free,), = text_engine.generate(prompts[:1], Sampling(temperature=0, max_new_tokens=len(stop_script),
                                                              stop=()))
    assert free.finish_reason == "length" and free.token_ids == stop_script


def test_banned_tokens_are_never_sampled_even_when_the_model_prefers_them(text_bundle, text_engine):
    banned = text_bundle.banned_token_ids
    assert len(banned) >= 5
    short = Prompt(text=text_bundle.tokenizer.apply_chat_template(  # any rendered prompt will do; short is fast
        [{"role": "user", "content": "Task: open Settings"}], tokenize=False, add_generation_prompt=True))
    with biased(text_bundle.model, banned, 30.0):
        groups = text_engine.generate([short], Sampling(n=60, temperature=1.0, seed=3, max_new_tokens=8))
    completions = flat(groups)
    assert len(completions) == 60
    assert not {t for c in completions for t in c.token_ids} & set(banned)
    # The reported log-probs are the raw model's: the banned tokens held nearly all the mass.
    assert max(lp for c in completions for lp in c.logprobs) < -20


def test_update_weights_loads_hf_named_tensors_in_place(text_bundle, text_engine, text_prompts, tiny_dirs):
    greedy = Sampling(temperature=0, max_new_tokens=10)
    before = [c.token_ids for c in flat(text_engine.generate(text_prompts, greedy))]
    original = {k: v.clone() for k, v in text_bundle.model.state_dict().items()}
    other = HFEngine(tiny_dirs["text-seed1"])
    expected = [c.token_ids for c in flat(other.generate(text_prompts, greedy))]
    assert expected != before
    text_engine.update_weights(load_file(tiny_dirs["text-seed1"] / "model.safetensors"))
    assert [c.token_ids for c in flat(text_engine.generate(text_prompts, greedy))] == expected
    text_engine.update_weights(iter(original.items()))  # (name, tensor) pairs work too
    assert [c.token_ids for c in flat(text_engine.generate(text_prompts, greedy))] == before


def test_update_weights_takes_checkpoint_names_of_a_vl_model(vl_bundle, vl_engine, vl_prompts, tiny_dirs):
    greedy = Sampling(temperature=0, max_new_tokens=6)
    checkpoint = load_file(tiny_dirs["vl-seed1"] / "model.safetensors")
    assert set(checkpoint) != set(vl_bundle.model.state_dict())  # transformers 5 renames on save
    original = {k: v.clone() for k, v in vl_bundle.model.state_dict().items()}
    expected = [c.token_ids for c in flat(HFEngine(tiny_dirs["vl-seed1"]).generate(vl_prompts, greedy))]
    vl_engine.update_weights(checkpoint)
    try:
        assert [c.token_ids for c in flat(vl_engine.generate(vl_prompts, greedy))] == expected
    finally:
        vl_engine.update_weights(original)


def test_bad_updates_change_nothing(text_bundle, text_engine):
    state = text_bundle.model.state_dict()
    name = "model.embed_tokens.weight"
    before = state[name].clone()
    with pytest.raises(KeyError, match="not a parameter"):
        text_engine.update_weights({name: torch.zeros_like(before), "model.nonsense": torch.zeros(1)})
    with pytest.raises(ValueError, match="has shape"):
        text_engine.update_weights({name: torch.zeros_like(before), "lm_head.weight": torch.zeros(3, 3)})
    assert torch.equal(text_bundle.model.state_dict()[name], before)


def test_sleep_and_wake_are_harmless_on_cpu(text_engine, text_prompts):
    text_engine.sleep()
    text_engine.wake()
    (completion,), = text_engine.generate(text_prompts[:1], Sampling(temperature=0, max_new_tokens=2))
    assert len(completion.token_ids) == 2


def test_an_engine_opens_a_path_and_empty_batches_are_fine(tiny_dirs):
    engine = HFEngine(tiny_dirs["text"], max_batch_size=4)
    assert engine.generate([], Sampling()) == []
    with pytest.raises(ValueError, match="max_batch_size"):
        HFEngine(engine.bundle, max_batch_size=0)
    assert encode_prompts(engine.bundle, []) == []
