"""Chunked log-probs (`sequence_logprobs(..., chunk_tokens)`, `algorithm.logprob_chunk_tokens`): the same values
and the same gradients as the unchunked path, element for element, for any chunk size — so the memory plan's
saving costs nothing in what is learned."""

from __future__ import annotations

import pytest
import torch

from tracer1.config import load_config
from tracer1.learner import grpo
from tracer1.learner.grpo import grpo_loss, grpo_objective
from tracer1.models import inputs
from tracer1.models.inputs import sequence_logprobs


def logits_and_ids(dtype, rows=3, width=11, vocab=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(rows, width, vocab, generator=g)).to(dtype).requires_grad_()
    return logits, torch.randint(0, vocab, (rows, width), generator=g)


def values_and_grad(logits, ids, chunk, upstream):
    logits.grad = None
    logp = sequence_logprobs(logits, ids, chunk)
    (logp * upstream).sum().backward()
    return logp.detach(), logits.grad.clone()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("chunk", [1, 3, 7, 10, 64])
def test_chunked_log_probs_equal_the_unchunked_ones_and_so_do_their_gradients(dtype, chunk):
    logits, ids = logits_and_ids(dtype)
    upstream = torch.randn(ids.shape, generator=torch.Generator().manual_seed(1))
    want_logp, want_grad = values_and_grad(logits, ids, 0, upstream)
    logp, grad = values_and_grad(logits, ids, chunk, upstream)
    assert logp.dtype == torch.float32 and grad.dtype == dtype
    assert torch.equal(logp, want_logp)
    assert torch.equal(grad, want_grad)
    assert torch.equal(grad[:, -1], torch.zeros_like(grad[:, -1]))  # the last position predicts nothing
    assert grad.abs().sum() > 0


def test_the_grpo_loss_and_its_gradient_do_not_change_with_chunks():
    logits, ids = logits_and_ids(torch.bfloat16, rows=4, width=9, vocab=40, seed=3)
    mask = torch.zeros_like(ids, dtype=torch.bool)
    mask[:, 4:] = True
    g = torch.Generator().manual_seed(4)
    batch = {"input_ids": ids, "completion_mask": mask, "advantages": torch.tensor([1.0, -0.5, 0.2, -0.7]),
             "old_logprobs": -torch.rand(ids.shape, generator=g), "ref_logprobs": -torch.rand(ids.shape, generator=g)}
    results = []
    for chunk in (0, 2, 5):
        logits.grad = None
        loss, metrics = grpo_loss(logits, batch, kl_coef=0.05, temperature=0.7, logprob_chunk_tokens=chunk,
                                  entropy_coef=0.01, loss_agg="seq-mean-token-mean")
        loss.backward()
        results.append((loss.detach(), logits.grad.clone(), metrics["kl"]))
    for loss, grad, kl in results[1:]:
        assert torch.equal(loss, results[0][0]) and torch.equal(grad, results[0][1]) and kl == results[0][2]


def test_the_objective_reads_algorithm_logprob_chunk_tokens(monkeypatch):
    spans = []
    real = inputs._chunks

    def counted(rows, width, chunk):
        for b, span in real(rows, width, chunk):
            spans.append(span.stop - span.start)
            yield b, span

    monkeypatch.setattr(inputs, "_chunks", counted)
    logits, ids = logits_and_ids(torch.float32, rows=2, width=9)
    batch = {"input_ids": ids, "completion_mask": torch.ones_like(ids, dtype=torch.bool),
             "advantages": torch.tensor([1.0, -1.0])}
    grpo_objective(load_config(["algorithm.kl_coef=0"]).algorithm)(logits, batch)
    assert spans == []  # 0: all at once
    grpo_objective(load_config(["algorithm.kl_coef=0", "algorithm.logprob_chunk_tokens=3"]).algorithm)(logits, batch)
    assert spans == [3, 3, 2, 3, 3, 2]  # 8 positions of each of 2 rows, 3 at a time
    assert grpo.sequence_logprobs is inputs.sequence_logprobs


def test_a_negative_chunk_is_refused_naming_the_field():
    with pytest.raises(Exception, match="logprob_chunk_tokens"):
        load_config(["algorithm.logprob_chunk_tokens=-1"])
