"""The DeepSpeed learner on CPU (gloo, one process): it trains, accumulates, exports HF weights and saves them
atomically. The model is a random-init two-layer Qwen2."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

from tracer1.config import LearnerConfig
from tracer1.learner import Learner, deepspeed_config, grpo_loss, lr_lambda, sft_loss
from tracer1.learner.grpo import aggregate
from tracer1.models.inputs import sequence_logprobs

VOCAB = 97


def tiny_qwen2(seed: int = 0) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(Qwen2Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64))


def batch(seed: int = 0, size: int = 4, length: int = 12) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (size, length), generator=g)
    completion = torch.zeros_like(ids)
    completion[:, length // 2:] = 1  # the second half is the "completion" we train on
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "completion_mask": completion}


def make_learner(zero_stage: int = 2, accumulation: int = 1, lr: float = 3e-3) -> Learner:
    cfg = LearnerConfig(zero_stage=zero_stage, micro_batch_size=4, grad_accum_steps=accumulation, backend="gloo")
    return Learner(tiny_qwen2(), cfg, lr=lr, total_steps=100)


def test_sequence_logprobs_is_log_softmax_gathered_and_aligned_with_the_ids():
    logits = torch.randn(2, 5, 11)
    ids = torch.randint(0, 11, (2, 5))
    expected = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    got = sequence_logprobs(logits, ids)
    assert got.shape == (2, 5) and torch.all(got[:, 0] == 0)
    torch.testing.assert_close(got[:, 1:], expected)


def test_token_mean_counts_only_masked_tokens():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    assert aggregate(values, mask, "token-mean").item() == pytest.approx((2 + 3 + 6) / 3)
    assert aggregate(values, torch.zeros_like(mask), "token-mean").item() == 0.0


def test_sft_loss_ignores_prompt_tokens():
    b = batch()
    logits = torch.randn(4, 12, VOCAB)
    loss, metrics = sft_loss(logits, b)
    # changing the logits that predict prompt tokens (positions 0..4 predict tokens 1..5) changes nothing;
    # the last prompt position (5) predicts the first completion token (6) and does count
    logits2 = logits.clone()
    logits2[:, :5] += torch.randn(4, 5, VOCAB)
    assert sft_loss(logits2, b)[0].item() == pytest.approx(loss.item())
    assert metrics["tokens"] == 4 * 6


def test_lr_schedule_warmup_then_cosine():
    f = lr_lambda("cosine", warmup_steps=2, total_steps=12)
    assert [f(0), f(1)] == [0.5, 1.0]
    assert f(2) == pytest.approx(1.0)
    assert f(7) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(12) == pytest.approx(0.0)
    assert lr_lambda("constant", 0, 10)(9) == 1.0


def test_deepspeed_config_follows_learner_config():
    cfg = LearnerConfig(zero_stage=3, micro_batch_size=2, grad_clip=0.5, offload_optimizer=True)
    ds = deepspeed_config(cfg, lr=1e-4, weight_decay=0.01, dtype="bfloat16", accumulation=8)
    assert ds["zero_optimization"] == {"stage": 3, "offload_optimizer": {"device": "cpu"}}
    assert (ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"]) == (2, 8)
    assert ds["gradient_clipping"] == 0.5 and ds["bf16"]["enabled"] and not ds["fp16"]["enabled"]
    assert ds["optimizer"]["params"]["lr"] == 1e-4


def test_sft_steps_fit_a_fixed_batch():
    learner = make_learner()
    b = batch()
    first = learner.step([b], sft_loss)
    for _ in range(30):
        last = learner.step([b], sft_loss)
    assert last["loss"] < 0.5 * first["loss"]
    assert last["token_accuracy"] > first["token_accuracy"]
    assert learner.steps_done == 31 and last["lr"] == pytest.approx(3e-3)


def test_step_needs_one_accumulation_worth_of_micro_batches():
    learner = make_learner(accumulation=2)
    with pytest.raises(ValueError, match="needs 2 micro-batches"):
        learner.step([batch()], sft_loss)
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    learner.step([batch(1), batch(2)], sft_loss)
    after = learner.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_logprobs_match_a_plain_forward():
    learner = make_learner()
    b = batch(3)
    (got,) = learner.logprobs([b])
    plain = tiny_qwen2()
    plain.load_state_dict(learner.state_dict())
    plain.eval()
    with torch.no_grad():
        expected = sequence_logprobs(plain(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits,
                                     b["input_ids"])
    # The completion columns (second half) match; the prompt columns read 0: no logits are computed for them
    # (beyond the last prompt token's, which predict the first completion token).
    torch.testing.assert_close(got[:, 6:], expected[:, 6:], atol=1e-5, rtol=1e-5)
    assert (got[:, :6] == 0).all() and (expected[:, 1:6] < 0).all()


@pytest.mark.parametrize("zero_stage", [2, 3])
def test_save_pretrained_round_trips_and_replaces_atomically(tmp_path, zero_stage):
    learner = make_learner(zero_stage=zero_stage)
    learner.step([batch()], sft_loss)
    out = learner.save_pretrained(tmp_path / "policy")
    state = learner.state_dict()
    assert set(state) >= {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight"}
    loaded = AutoModelForCausalLM.from_pretrained(out, use_safetensors=True)
    for name, tensor in loaded.state_dict().items():
        torch.testing.assert_close(tensor, state[name])
    learner.step([batch(1)], sft_loss)
    learner.save_pretrained(tmp_path / "policy", extra_files=lambda d: (d / "marker.txt").write_text("x"))
    assert (out / "marker.txt").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy"]  # no temp or old dirs left behind


def test_unequal_micro_batches_with_a_loss_denominator_give_the_full_batch_gradient():
    """The RL loop splits whatever survives group filtering into `accumulation` micro-batches of any size;
    with grpo_loss's `loss_denominator` the accumulated gradient is the full batch's (Adam hides a wrong scale
    in the weights after one step, so the gradient norm is compared)."""
    full = batch(3, size=4)
    full["advantages"] = torch.tensor([1.0, -0.5, 0.25, -0.75])
    tokens = full["completion_mask"].sum()
    one = make_learner(accumulation=1).step([{**full, "loss_denominator": tokens}], grpo_loss)
    parts = [{k: v[rows] for k, v in full.items()} for rows in (slice(0, 3), slice(3, 4))]
    split = make_learner(accumulation=2).step([{**p, "loss_denominator": tokens / 2} for p in parts], grpo_loss)
    assert split["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-4)
    assert one["grad_norm"] > 0


def test_adam_betas_reach_the_optimizer():
    cfg = LearnerConfig(micro_batch_size=4, backend="gloo")
    learner = Learner(tiny_qwen2(), cfg, lr=1e-3, total_steps=10, betas=(0.8, 0.95))
    assert {tuple(group["betas"]) for group in learner.optimizer.param_groups} == {(0.8, 0.95)}
    assert deepspeed_config(cfg, lr=1e-3, weight_decay=0.0, dtype="float32", accumulation=1)["optimizer"][
        "params"]["betas"] == [0.9, 0.999]  # torch's default when not given


def test_one_sgd_step_shows_a_gradient_off_by_a_constant_factor_that_one_adamw_step_mostly_hides():
    """Why the data-parallel test (tests/test_train_actors.py) compares weights after an SGD step: AdamW's first
    update is about lr·sign(g) — the same for most weights with a gradient twice too large (only those whose
    |g| is near Adam's eps tell) — while SGD's is −lr·g."""
    full = batch(3, size=4)
    full["advantages"] = torch.tensor([1.0, -0.5, 0.25, -0.75])
    full["loss_denominator"] = full["completion_mask"].sum()
    cfg = LearnerConfig(micro_batch_size=4, grad_accum_steps=1, grad_clip=0.0, backend="gloo")
    start = tiny_qwen2().state_dict()

    def update(optimizer: str, scale: float) -> torch.Tensor:
        def objective(logits, b):
            loss, metrics = grpo_loss(logits, b)
            return scale * loss, metrics

        learner = Learner(tiny_qwen2(), cfg, lr=1e-2, total_steps=10, optimizer=optimizer)
        learner.step([full], objective)
        return torch.cat([(w - start[k]).flatten() for k, w in learner.state_dict().items()])

    adam, adam_doubled = update("adamw", 1.0), update("adamw", 2.0)
    moved = adam != 0
    assert ((adam - adam_doubled).abs() <= 1e-6)[moved].float().mean() > 0.8
    sgd, sgd_doubled = update("sgd", 1.0), update("sgd", 2.0)
    assert (sgd != 0).float().mean() > 0.8
    torch.testing.assert_close(sgd_doubled, 2 * sgd)


def test_zero3_state_dict_gathers_one_bucket_at_a_time_and_returns_the_whole_model(monkeypatch):
    """A weight sync must not gather the whole model on a rank at once: `state_dict` gathers a bucket of
    `sync_bucket_bytes` at a time (each GatheredParameters call is recorded), and still returns every weight."""
    import deepspeed

    learner = make_learner(zero_stage=3)
    learner.step([batch()], sft_loss)
    params = list(learner.model.parameters())
    with deepspeed.zero.GatheredParameters(params):  # the reference answer: everything at once
        expected = {k: v.clone() for k, v in learner.model.state_dict().items()}
    whole = sum(p.ds_numel * p.element_size() for p in params)
    largest = max(p.ds_numel * p.element_size() for p in params)
    real, gathered = deepspeed.zero.GatheredParameters, []

    def recording(gather, *args, **kwargs):
        gathered.append(sum(p.ds_numel * p.element_size() for p in gather))
        return real(gather, *args, **kwargs)

    monkeypatch.setattr(deepspeed.zero, "GatheredParameters", recording)
    learner.sync_bucket_bytes = 16 * 1024
    state = learner.state_dict()
    assert len(gathered) > 3 and max(gathered) <= max(learner.sync_bucket_bytes, largest) < whole
    assert sum(gathered) == whole  # each parameter gathered once
    assert list(state) == list(expected) and all(torch.equal(state[k], expected[k]) for k in expected)
    assert {t.device.type for t in state.values()} == {"cpu"}


def test_a_rank_other_than_0_returns_no_weights_without_zero3():
    """Without ZeRO-3 every rank holds the whole model: only rank 0 copies it out (this process's group has one
    rank; `rank` is only the learner's label here — two real ranks are in tests/test_learner_ranks.py)."""
    cfg = LearnerConfig(zero_stage=2, micro_batch_size=4, backend="gloo")
    assert Learner(tiny_qwen2(), cfg, lr=1e-3, total_steps=10, rank=1).state_dict() == {}
    assert len(Learner(tiny_qwen2(), cfg, lr=1e-3, total_steps=10, rank=0).state_dict()) > 0


def test_tied_weights_are_copied_once_and_keep_both_names():
    torch.manual_seed(0)
    tied = Qwen2ForCausalLM(Qwen2Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True))
    names = set(tied.state_dict())
    cfg = LearnerConfig(zero_stage=3, micro_batch_size=4, backend="gloo")
    state = Learner(tied, cfg, lr=1e-3, total_steps=10).state_dict()
    assert set(state) == names and "lm_head.weight" in names
    assert state["lm_head.weight"] is state["model.embed_tokens.weight"]
