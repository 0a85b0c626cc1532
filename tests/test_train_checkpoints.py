"""Step checkpoints of the RL stages: a `step-*` directory is complete or absent, old ones are pruned, resume
finds the newest complete one, and `init_from` accepts a run, a step checkpoint or an HF directory. Written
asynchronously (`checkpoint.async_write`), a checkpoint is complete only once every rank's background copy is,
at most one is in flight, and a real learner rank resumed from one continues exactly as the rank that wrote it."""

from __future__ import annotations

import threading

import pytest
import torch
import torch.multiprocessing as mp
from tiny_planners import one_thread  # noqa: F401  (fixture)

from tracer1.config import CheckpointConfig, RunConfig
from tracer1 import atomic
from tracer1.atomic import BackgroundCopy
from tracer1.train.checkpoints import (CheckpointWriter, complete_checkpoints, policy_dir, read_state, resume_point,
                                       step_dir, write_checkpoint)


def parts(tmp):
    (tmp / "policy").mkdir()
    (tmp / "policy" / "model.safetensors").write_bytes(b"weights")
    return {"learner_rng": [{"rank": 0}]}


def test_a_checkpoint_holds_its_parts_and_state_and_old_ones_are_pruned(tmp_path):
    for step in (10, 20, 30):
        write_checkpoint(tmp_path, step, parts, {"data_cursor": step}, keep_last=2)
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["step-000020", "step-000030"]
    state = read_state(step_dir(tmp_path, 30))
    assert state == {"data_cursor": 30, "learner_rng": [{"rank": 0}], "step": 30}
    assert (step_dir(tmp_path, 30) / "policy" / "model.safetensors").read_bytes() == b"weights"


def test_a_save_that_fails_midway_leaves_no_checkpoint_and_the_previous_one_stands(tmp_path):
    write_checkpoint(tmp_path, 10, parts, {}, keep_last=2)

    def crash(tmp):
        parts(tmp)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_checkpoint(tmp_path, 20, crash, {}, keep_last=2)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-000010"]
    assert resume_point("auto", tmp_path) == step_dir(tmp_path, 10)


def test_a_directory_left_by_a_killed_save_is_not_resumed_from_and_is_cleaned_up(tmp_path):
    write_checkpoint(tmp_path, 10, parts, {}, keep_last=2)
    half = tmp_path / "checkpoints" / ".step-000020.tmp"  # what SIGKILL during a save leaves
    half.mkdir()
    (tmp_path / "checkpoints" / "step-000030").mkdir()  # a step directory without its state file is not complete
    assert resume_point("auto", tmp_path) == step_dir(tmp_path, 10)
    write_checkpoint(tmp_path, 20, parts, {}, keep_last=5)
    assert not half.exists() and resume_point("auto", tmp_path) == step_dir(tmp_path, 20)


def test_resume_points(tmp_path):
    assert resume_point("auto", tmp_path) is None  # a fresh run
    write_checkpoint(tmp_path, 5, parts, {}, keep_last=2)
    assert resume_point("never", tmp_path) is None
    assert resume_point(str(step_dir(tmp_path, 5)), tmp_path / "elsewhere") == step_dir(tmp_path, 5)
    with pytest.raises(ValueError, match=r"checkpoint.resume=.*not a complete checkpoint.*step-NNNNNN"):
        resume_point(str(tmp_path), tmp_path)


def test_init_from_accepts_a_run_a_step_checkpoint_or_an_hf_directory(tmp_path):
    run = tmp_path / "run"
    write_checkpoint(run, 5, parts, {}, keep_last=2)
    assert policy_dir(run) == step_dir(run, 5) / "policy"  # a run still going: its newest checkpoint
    assert policy_dir(step_dir(run, 5)) == step_dir(run, 5) / "policy"
    (run / "checkpoints" / "final").mkdir()
    assert policy_dir(run) == run / "checkpoints" / "final"  # a finished run: its final policy
    assert policy_dir(tmp_path / "hf-model") == tmp_path / "hf-model"


# --- checkpoint.async_write ----------------------------------------------------------------------------------------

class Ranks:
    """Two learner ranks' side of an asynchronous checkpoint, without the model: each writes a part to its
    node-local directory and copies it to the shared temp directory in the background, as `LearnerWorker`
    does; `release` holds every copy until it is set."""

    def __init__(self, monkeypatch):
        self.copies, self.release = [BackgroundCopy(), BackgroundCopy()], threading.Event()
        copy_tree = atomic.copy_tree

        def held_copy(src, dst):
            assert self.release.wait(30), "the test never released the copies"
            copy_tree(src, dst)

        monkeypatch.setattr(atomic, "copy_tree", held_copy)

    def parts(self, tmp, local):
        for rank, copy in enumerate(self.copies):
            part = local / f"rank-{rank}"
            (part / "deepspeed" / "state").mkdir(parents=True)
            (part / "deepspeed" / "state" / f"zero_pp_rank_{rank}_optim_states.pt").write_bytes(b"x" * (rank + 1))
            if rank == 0:
                (part / "policy").mkdir()
                (part / "policy" / "model.safetensors").write_bytes(b"weights")
            copy.start(part, tmp)
        return {"learner_rng": [{"rank": 0}, {"rank": 1}]}

    def copied(self, wait):
        return all([copy.done(wait) for copy in self.copies])  # a list: every rank is asked


def async_writer(tmp_path, ranks, keep_last=2):
    config = CheckpointConfig(async_write=True, local_dir=str(tmp_path / "local"), keep_last=keep_last)
    return CheckpointWriter(tmp_path / "run", config, copied=ranks.copied)


def test_an_async_checkpoint_is_not_complete_until_every_rank_has_copied_its_part(tmp_path, monkeypatch):
    ranks = Ranks(monkeypatch)
    writer, run = async_writer(tmp_path, ranks), tmp_path / "run"
    cursor = [1, 2]
    writer.save(10, ranks.parts, {"cursor": cursor})
    cursor.append(3)  # the loop goes on changing its state: the checkpoint keeps the state at its step
    assert complete_checkpoints(run) == [] and resume_point("auto", run) is None  # copies still running
    assert writer.poll() is None and complete_checkpoints(run) == []
    ranks.release.set()
    assert writer.wait() == step_dir(run, 10)
    assert complete_checkpoints(run) == [step_dir(run, 10)] and resume_point("auto", run) == step_dir(run, 10)
    assert read_state(step_dir(run, 10)) == {"cursor": [1, 2], "learner_rng": [{"rank": 0}, {"rank": 1}],
                                             "step": 10}
    files = sorted(str(f.relative_to(step_dir(run, 10))) for f in step_dir(run, 10).rglob("*") if f.is_file())
    assert files == ["deepspeed/state/zero_pp_rank_0_optim_states.pt", "deepspeed/state/zero_pp_rank_1_optim_states.pt",
                     "policy/model.safetensors", "trainer_state.json"]  # both ranks' parts, merged
    assert not list((tmp_path / "local").rglob("*.pt"))  # the node-local parts are gone once copied


def test_at_most_one_async_checkpoint_is_in_flight_and_old_ones_are_pruned(tmp_path, monkeypatch):
    ranks = Ranks(monkeypatch)
    writer, run = async_writer(tmp_path, ranks, keep_last=1), tmp_path / "run"
    writer.save(10, ranks.parts, {})
    threading.Timer(0.3, ranks.release.set).start()
    writer.save(20, ranks.parts, {})  # waits for step 10's copies first
    assert writer.stall_s >= 0.2
    assert complete_checkpoints(run) == [step_dir(run, 10)]  # finished before step 20 began
    assert writer.wait() == step_dir(run, 20) and complete_checkpoints(run) == [step_dir(run, 20)]  # keep_last=1
    assert writer.poll() is None and writer.wait() is None  # nothing in flight


def test_a_failed_copy_stops_the_run_and_leaves_no_checkpoint(tmp_path, monkeypatch):
    ranks = Ranks(monkeypatch)
    writer, run = async_writer(tmp_path, ranks), tmp_path / "run"
    monkeypatch.setattr(atomic, "copy_tree", lambda src, dst: (_ for _ in ()).throw(OSError("EFS full")))
    writer.save(10, ranks.parts, {})
    with pytest.raises(RuntimeError, match="copying a checkpoint part to shared storage failed.*EFS full"):
        writer.wait()
    assert complete_checkpoints(run) == [] and not list((run / "checkpoints").iterdir())


def test_local_dir_must_be_absolute():
    with pytest.raises(ValueError, match="local_dir"):
        RunConfig.model_validate({"checkpoint": {"async_write": True, "local_dir": "scratch"}})


def learner_worker(model_dir, reference_dir=None, lr=1e-2):
    from tracer1.learner.worker import LearnerWorker  # noqa: PLC0415 — DeepSpeed only for the tests below

    config = RunConfig.model_validate({"learner": {"grad_accum_steps": 1, "backend": "gloo"},
                                       "algorithm": {"lr": lr}})
    return LearnerWorker(model_dir, config, reference_dir=reference_dir)


def grpo_batch(worker):
    from tracer1.engines.base import Prompt  # noqa: PLC0415
    from tracer1.models.inputs import encode_for_training, tokenize_target  # noqa: PLC0415

    plans = ('<plan>\n1. click(target="Wi-Fi")\n</plan>', '<plan>\n1. press(key="home")\n</plan>')
    batch = encode_for_training(worker.bundle, [Prompt(text="Task: turn on Wi-Fi.")] * 2,
                                [tokenize_target(worker.bundle, p) for p in plans])
    batch["advantages"] = torch.tensor([1.0, -1.0])
    batch["loss_denominator"] = batch["completion_mask"].sum().float()
    return [batch]


def test_a_learner_rank_resumed_from_an_async_checkpoint_continues_exactly(tmp_path, one_thread):  # noqa: F811
    """A real `LearnerWorker` (DeepSpeed on gloo) takes a step, writes an asynchronous checkpoint (node-local,
    then the background copy) and a synchronous one; a fresh rank resumed from the asynchronous one takes the next
    step exactly as the rank that wrote it, and both ways write the same files."""
    from tracer1.models.tiny import build_tiny_planner  # noqa: PLC0415

    model = build_tiny_planner(tmp_path / "tiny", kind="text", seed=0)
    worker = learner_worker(model)
    worker.step(grpo_batch(worker))
    writer = CheckpointWriter(tmp_path / "run", CheckpointConfig(async_write=True, local_dir=str(tmp_path / "nvme")),
                              copied=worker.checkpoint_copied)
    writer.save(1, lambda tmp, local: {"learner_rng": [worker.save_checkpoint(tmp, local)]}, {})
    done = writer.wait()
    assert done == step_dir(tmp_path / "run", 1) and not list((tmp_path / "nvme").rglob("*.pt"))
    write_checkpoint(tmp_path / "sync", 1, lambda tmp: {"learner_rng": [worker.save_checkpoint(tmp)]}, {}, 1)
    files = {d: sorted(str(f.relative_to(d)) for f in d.rglob("*") if f.is_file() and f.name != "trainer_state.json")
             for d in (done, step_dir(tmp_path / "sync", 1))}
    assert files[done] == files[step_dir(tmp_path / "sync", 1)] and any(f.endswith("optim_states.pt")
                                                                        for f in files[done])

    resumed = learner_worker(done / "policy", reference_dir=model)  # the stage's start stays the KL reference
    assert resumed.load_checkpoint(done, read_state(done)["learner_rng"][0]) == worker.learner.steps_done == 1
    after_original, after_resumed = worker.step(grpo_batch(worker)), resumed.step(grpo_batch(resumed))
    assert after_resumed == pytest.approx(after_original, rel=1e-6, abs=1e-8)
    theirs, ours = worker.state_dict(), resumed.state_dict()
    assert all(torch.equal(theirs[k], ours[k]) for k in theirs)
    fresh = learner_worker(done / "policy", reference_dir=model)  # without the optimizer state the next step differs: the test can fail
    fresh.step(grpo_batch(fresh))
    assert not all(torch.equal(theirs[k], v) for k, v in fresh.state_dict().items())


def two_ranks(rank: int, root, port: int) -> None:
    """One of two ZeRO-3 learner ranks (a process each, gloo): a step, an asynchronous checkpoint — rank 0 plays
    the driver's `CheckpointWriter`, and "every rank's copy is done" is a collective over the ranks, as the driver
    asks each rank actor — then a fresh rank resumed from the merged checkpoint takes the next step."""
    import torch.distributed as dist  # noqa: PLC0415

    torch.set_num_threads(1)
    config = RunConfig.model_validate({"learner": {"grad_accum_steps": 1, "backend": "gloo", "zero_stage": 3,
                                                   "num_ranks": 2}, "algorithm": {"lr": 1e-2}})
    from tracer1.learner.worker import LearnerWorker  # noqa: PLC0415

    def rank_worker(model_dir):
        return LearnerWorker(model_dir, config, reference_dir=root / "tiny", rank=rank, world_size=2,
                             master_port=port)

    def batch(worker):
        micro = grpo_batch(worker)
        micro[0]["advantages"] = torch.tensor([1.0, -1.0] if rank == 0 else [-0.5, 0.5])  # ranks differ
        return micro

    def copied(wait: bool) -> bool:
        done = torch.tensor([float(worker.checkpoint_copied(wait))])
        dist.all_reduce(done, op=dist.ReduceOp.MIN)
        return bool(done.item())

    worker = rank_worker(root / "tiny")
    worker.step(batch(worker))
    local = root / f"nvme-{rank}"  # each rank's own node-local disk
    if rank == 0:
        writer = CheckpointWriter(root / "run", CheckpointConfig(async_write=True, local_dir=str(local)), copied)
        writer.save(1, lambda tmp, part: {"learner_rng": [worker.save_checkpoint(tmp, part)]}, {})
        writer.wait()
    else:
        worker.save_checkpoint(root / "run" / "checkpoints" / ".step-000001.tmp", local / "run" / "step-000001")
        copied(True)
    dist.barrier()
    done = step_dir(root / "run", 1)
    resumed = rank_worker(done / "policy")
    resumed.load_checkpoint(done)
    ours, theirs = resumed.step(batch(resumed)), worker.step(batch(worker))
    assert ours == pytest.approx(theirs, rel=1e-6, abs=1e-8)
    a, b = worker.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_two_zero3_ranks_resume_exactly_from_their_merged_async_checkpoint(tmp_path):
    """Each ZeRO-3 rank writes its own optimizer and parameter partitions to its own local disk; the background
    copies merge them into one checkpoint, which two fresh ranks resume from exactly."""
    from tracer1.learner.distributed import free_port  # noqa: PLC0415
    from tracer1.models.tiny import build_tiny_planner  # noqa: PLC0415

    build_tiny_planner(tmp_path / "tiny", kind="text", seed=0)
    mp.spawn(two_ranks, args=(tmp_path, free_port()), nprocs=2, join=True)  # a failed assert fails the spawn
    parts = sorted(f.name for f in (step_dir(tmp_path / "run", 1) / "deepspeed").rglob("*.pt"))
    assert parts == [f"zero_pp_rank_{r}_mp_rank_00_{kind}_states.pt" for r in (0, 1) for kind in ("model", "optim")]
