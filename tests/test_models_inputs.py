"""Prompts + completions as tensors (`tracer1.models.inputs`): right-padded training batches whose prompt part
is exactly the engine's prompt tokenisation, a completion mask on completion tokens only, vision tensors in
prompt order, and log-probs from one teacher-forced forward."""

from __future__ import annotations

import pytest
import torch

from tracer1.engines.base import Prompt
from tracer1.learner.losses import sft_loss
from tracer1.models.inputs import (collate, completion_logits, completion_logprobs, encode_for_training, encode_prompts,
                                   model_inputs, sequence_logprobs)
from tracer1.models.prompt import plan_target, prompt_from_sample, tokenize_target

from tiny_planners import one_thread, samples, text_bundle, tiny_dirs, vl_bundle  # noqa: F401  (fixtures)


def test_a_training_batch_is_prompt_then_completion_right_padded(text_bundle, samples):
    b = text_bundle
    prompts = [prompt_from_sample(b, s, horizon=4) for s in samples[:3]]
    targets = [tokenize_target(b, plan_target(s.future, 4)) for s in samples[:3]]
    batch = encode_for_training(b, prompts, targets)
    encoded = encode_prompts(b, prompts)
    assert set(batch) == {"input_ids", "attention_mask", "completion_mask"}
    for row, (e, t) in enumerate(zip(encoded, targets)):
        n = len(e.input_ids) + len(t)
        assert batch["input_ids"][row, :n].tolist() == list(e.input_ids) + t
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (batch["input_ids"].shape[1] - n)
        assert batch["completion_mask"][row].tolist() == ([0] * len(e.input_ids) + [1] * len(t)
                                                          + [0] * (batch["input_ids"].shape[1] - n))
        assert (batch["input_ids"][row, n:] == b.pad_token_id).all()


def test_vision_batches_carry_each_prompts_image_patches_in_order(vl_bundle, samples):
    b = vl_bundle
    with_image = prompt_from_sample(b, samples[0], horizon=2)
    without = Prompt(text=prompt_from_sample(b, samples[1], horizon=2).text.replace(
        "<|vision_start|><|image_pad|><|vision_end|>", ""))
    batch = encode_for_training(b, [with_image, without, with_image], [[5, 6], [7], [8, 9, 10]])
    grid = batch["image_grid_thw"]
    assert grid.shape == (2, 3) and batch["pixel_values"].shape[0] == int(grid.prod(-1).sum())
    types = batch["mm_token_type_ids"]
    assert types.tolist() == (batch["input_ids"] == b.image_token_id).long().tolist()
    assert types[1].sum() == 0 and types[0].sum() == types[2].sum() == int(grid[0].prod()) // 4


def test_a_repeated_prompt_is_encoded_once_and_an_encoded_one_passes_through(vl_bundle, samples):
    prompt = prompt_from_sample(vl_bundle, samples[0], horizon=2)
    a, b = encode_prompts(vl_bundle, [prompt, prompt])
    assert a is b and encode_prompts(vl_bundle, [a]) == [a]
    from_encoded = encode_for_training(vl_bundle, [a], [[5, 6]])
    from_prompt = encode_for_training(vl_bundle, [prompt], [[5, 6]])
    assert from_encoded.keys() == from_prompt.keys()
    assert all(torch.equal(from_encoded[k], from_prompt[k]) for k in from_prompt)


def test_mismatched_lengths_and_images_for_a_text_model_are_refused(text_bundle, vl_bundle, samples):
    prompt = prompt_from_sample(text_bundle, samples[0], horizon=2)
    with pytest.raises(ValueError, match="1 prompts but 2 completions"):
        encode_for_training(text_bundle, [prompt], [[1], [2]])
    with pytest.raises(ValueError, match="text-only model .* 1 image"):
        encode_for_training(text_bundle, [prompt_from_sample(vl_bundle, samples[0], horizon=2)], [[1]])
    with pytest.raises(ValueError, match="padding_side"):
        collate(text_bundle, [[1]], encode_prompts(text_bundle, [prompt]), padding_side="middle")


def test_completion_logprobs_match_one_sequence_at_a_time(vl_bundle, samples):
    # Padding and batching must not change a token's log-prob: compare the batch with unpadded single rows.
    b = vl_bundle
    prompts = [prompt_from_sample(b, s, horizon=3) for s in samples[:2]]
    targets = [tokenize_target(b, plan_target(s.future, 3)) for s in samples[:2]]
    batch = encode_for_training(b, prompts, targets)
    with torch.no_grad():
        together = completion_logprobs(b.model, batch)
        for row in range(2):
            alone = completion_logprobs(b.model, encode_for_training(b, prompts[row:row + 1], targets[row:row + 1]))
            n = alone.shape[1]
            assert torch.allclose(together[row, :n], alone[0], atol=1e-4)
    assert (together[batch["completion_mask"] == 0] == 0).all() and (together[batch["completion_mask"] == 1] < 0).all()
    assert "completion_mask" not in model_inputs(batch)


def test_logits_from_the_first_completion_on_give_the_full_forwards_loss_and_gradients(vl_bundle, samples):
    # Two prompts of different lengths: the window starts one column before the earlier completion.
    b = vl_bundle
    prompts = [prompt_from_sample(b, s, horizon=3) for s in (samples[0], samples[5])]
    targets = [tokenize_target(b, plan_target(s.future, 3)) for s in (samples[0], samples[5])]
    batch = encode_for_training(b, prompts, targets)
    first = int(batch["completion_mask"].any(0).nonzero()[0])
    assert first > 50  # the prompts are most of the sequence: that is what the window saves

    logits, window = completion_logits(b.model, batch)
    assert logits.shape[1] == window["input_ids"].shape[1] == batch["input_ids"].shape[1] - (first - 1)
    assert window["completion_mask"].sum() == batch["completion_mask"].sum()
    loss, _ = sft_loss(logits, window)
    loss.backward()
    windowed = {n: p.grad.clone() for n, p in b.model.named_parameters() if p.grad is not None}
    b.model.zero_grad()

    full = b.model(**model_inputs(batch), use_cache=False).logits
    full_loss, _ = sft_loss(full, batch)
    full_loss.backward()
    assert torch.allclose(loss, full_loss, atol=1e-5)
    for name, param in b.model.named_parameters():
        if param.grad is not None:
            assert torch.allclose(windowed[name], param.grad, atol=1e-5), name
    b.model.zero_grad()
    with torch.no_grad():
        mask = batch["completion_mask"] == 1
        assert torch.allclose(completion_logprobs(b.model, batch)[mask],
                              sequence_logprobs(b.model(**model_inputs(batch)).logits, batch["input_ids"])[mask],
                              atol=1e-5)
