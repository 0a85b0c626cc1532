"""Parquet shards on shared storage (tracer1.data.shards): writing them from existing samples, listing them through
pyarrow filesystems (a local directory, and a non-local filesystem through fsspec's in-memory one), each worker
reading only its own contiguous range of shards, a bad row named by shard and row, and the endless per-worker
draw that resumes from a position."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from tracer1.data.schema import SCHEMA, SampleError, iter_samples, to_row, write_samples
from tracer1.data.shards import (
    WorkerShardReader, list_shards, resolve, shard_range, stream_worker_samples, worker_shards, write_shards,
)
from tracer1.data.synthetic import generate_samples


@pytest.fixture(scope="module")
def samples():
    return list(generate_samples(3, seed=1, horizon=10))


@pytest.fixture()
def shard_dir(tmp_path, samples):
    """The samples as one Parquet file (as the converters write them), re-written as shards of 4 rows."""
    write_samples(tmp_path / "train.parquet", samples)
    uri = str(tmp_path / "shards")
    write_shards(iter_samples(tmp_path / "train.parquet"), uri, rows_per_shard=4)
    return uri


def ids(batches) -> list[str]:
    return [s.sample_id for batch in batches for s in batch]


def test_shards_are_written_in_order_with_the_rows_asked_for(shard_dir, samples):
    shards = list_shards(shard_dir)
    n = len(samples)
    assert [s.uri.rsplit("/", 1)[1] for s in shards] == [f"part-{i:05d}.parquet" for i in range(-(-n // 4))]
    assert [s.rows for s in shards] == [4] * (n // 4) + ([n % 4] if n % 4 else [])


def test_worker_ranges_are_contiguous_and_differ_by_at_most_one_shard():
    assert [shard_range(8, w, 3) for w in range(3)] == [range(0, 3), range(3, 6), range(6, 8)]
    assert [shard_range(4, w, 4) for w in range(4)] == [range(i, i + 1) for i in range(4)]
    with pytest.raises(ValueError, match="2 shards for 3 workers: every worker needs at least one"):
        shard_range(2, 0, 3)
    with pytest.raises(ValueError, match="worker 3 of 3"):
        shard_range(8, 3, 3)


def test_the_workers_together_read_every_sample_once_in_order(shard_dir, samples):
    read = [ids(stream_worker_samples(shard_dir, w, 3, batch_size=3)) for w in range(3)]
    assert sum(read, []) == [s.sample_id for s in samples]
    assert [len(r) for r in read] == [sum(s.rows for s in worker_shards(shard_dir, w, 3)) for w in range(3)]


def test_a_worker_never_opens_another_workers_shards(shard_dir):
    shards = list_shards(shard_dir)
    mine = worker_shards(shard_dir, 1, 3)
    expected = ids(stream_worker_samples(shard_dir, 1, 3, shards=shards))
    for shard in shards:
        if shard not in mine:  # break every other shard: worker 1 must not notice
            with open(shard.path, "wb") as f:
                f.write(b"not parquet")
    assert ids(stream_worker_samples(shard_dir, 1, 3, shards=shards)) == expected


def test_a_non_local_filesystem_works_the_same(samples):
    uris = write_shards(samples, "memory://tracer1-test/train", rows_per_shard=10)
    assert uris[0] == "memory://tracer1-test/train/part-00000.parquet"
    filesystem, path = resolve("memory://tracer1-test/train")
    assert isinstance(filesystem, pafs.PyFileSystem) and path == "/tracer1-test/train"
    both = ids(stream_worker_samples("memory://tracer1-test/train", 0, 2)) + \
        ids(stream_worker_samples("memory://tracer1-test/train", 1, 2))
    assert both == [s.sample_id for s in samples]


def test_object_store_uris_resolve_to_pyarrows_filesystems_and_unknown_ones_are_named():
    filesystem, path = resolve("gs://some-bucket/tracer1/train")  # no request is made until something is read
    assert type(filesystem).__name__ == "GcsFileSystem" and path == "some-bucket/tracer1/train"
    with pytest.raises(ValueError, match="no filesystem for nosuch://"):
        resolve("nosuch://bucket/train")
    with pytest.raises(FileNotFoundError, match="no samples at"):
        list_shards("memory://tracer1-test/absent")


def test_a_bad_row_is_named_by_its_shard_and_row(tmp_path, samples):
    rows = [to_row(s) for s in samples[:3]]
    rows[2]["split"] = "bogus"
    root = tmp_path / "bad"
    root.mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), root / "part-00000.parquet")
    with pytest.raises(SampleError, match=r"part-00000\.parquet: row 2: .*split"):
        list(stream_worker_samples(str(root), 0, 1))


def test_the_reader_draws_endlessly_and_resumes_from_its_position(shard_dir):
    mine = ids(stream_worker_samples(shard_dir, 2, 3))
    reader = WorkerShardReader(shard_dir, 2, 3, batch_size=2)
    first = [s.sample_id for s in reader.take(len(mine) + 3)]
    assert first == mine + mine[:3] and reader.position == len(mine) + 3  # a second epoch starts over
    resumed = WorkerShardReader(shard_dir, 2, 3, batch_size=5, skip=4)
    assert [s.sample_id for s in resumed.take(3)] == (mine + mine)[4:7]
    with pytest.raises(ValueError, match="no samples of split 'eval'"):
        WorkerShardReader(shard_dir, 0, 3, split="eval").take(1)


def test_the_command_reshards_a_converters_output(tmp_path, samples, capsys):
    from tracer1.data.shards import main

    write_samples(tmp_path / "converted.parquet", samples)
    assert main([str(tmp_path / "converted.parquet"), str(tmp_path / "out"), "--rows-per-shard", "10"]) == 0
    assert capsys.readouterr().out == f"{-(-len(samples) // 10)} shards under {tmp_path / 'out'}\n"
    assert ids(stream_worker_samples(str(tmp_path / "out"), 0, 1)) == [s.sample_id for s in samples]


def shard_run(uri: str, workers: int, prompts: int):
    from tracer1.config import RunConfig

    return RunConfig.model_validate({"data": {"train_shards": uri},
                                     "rollout": {"num_workers": workers, "prompts_per_step": prompts}})


def test_the_loop_keeps_one_cursor_per_worker_and_resumes_from_them(shard_dir):
    from tracer1.train.data_source import WorkerShards, training_data, worker_counts

    assert worker_counts(5, 2) == [3, 2] and worker_counts(1, 2) == [1, 0]  # prompts a step, first workers more
    config = shard_run(shard_dir, workers=2, prompts=5)
    fresh = training_data(config, {})  # 31 samples in 8 shards of 4 rows (the last has 3)
    assert isinstance(fresh, WorkerShards) and fresh.cursors == [0, 0]
    assert fresh.describe() == f"31 training samples in 8 shards at {shard_dir} (streamed by 2 rollout workers)"
    shard = fresh.worker_options(1)["shard"]
    assert (shard.worker, shard.workers, shard.skip, len(shard.shards)) == (1, 2, 0, 8)
    fresh.cursors = [6, 4]  # as after two steps of 3 + 2 samples
    saved = fresh.state(2)
    assert saved == {"data_cursor": 2, "shard_cursors": [6, 4]}
    resumed = training_data(config, {**saved, "step": 2})
    assert [resumed.worker_options(i)["shard"].skip for i in (0, 1)] == [6, 4]


def test_a_resume_that_would_move_the_workers_shard_ranges_is_refused(shard_dir):
    from tracer1.train.data_source import training_data

    with pytest.raises(ValueError, match="shard cursors of 2 rollout workers, rollout.num_workers is 3.*"
                                         "rollout.num_workers=2"):
        training_data(shard_run(shard_dir, workers=3, prompts=4), {"step": 2, "shard_cursors": [4, 4]})
    with pytest.raises(ValueError, match="has no shard cursors"):
        training_data(shard_run(shard_dir, workers=2, prompts=4), {"step": 2, "data_cursor": 2})
    with pytest.raises(ValueError, match="8 shards for 9 workers"):
        training_data(shard_run(shard_dir, workers=9, prompts=9), {})
