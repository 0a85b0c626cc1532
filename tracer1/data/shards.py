"""Planning samples as Parquet shards on shared storage, streamed by the workers that use them.

    write_shards(iter_samples("data/train.parquet"), "s3://my-bucket/tracer1/train?region=us-east-1", 2048)
    for batch in stream_worker_samples("s3://my-bucket/tracer1/train?region=us-east-1", worker=i, workers=n):
        ...                                  # worker i of n reads only its own shards, batch by batch

A location is a directory of `*.parquet` files (tracer1's sample schema, `tracer1.data.schema`) given as a local
path, a `file://`, `s3://` or `gs://` URI (pyarrow's own filesystems; S3/GCS credentials come from the usual
environment: AWS_* variables or an instance role, GOOGLE_APPLICATION_CREDENTIALS or workload identity; put
`?region=...` on an S3 URI to skip pyarrow's region lookup), or any other scheme an installed fsspec
filesystem handles (e.g. `memory://`, `abfs://` with adlfs), wrapped with pyarrow's FSSpecHandler.

Shards, not rows, are divided between workers: worker i of n takes a contiguous range of the sorted shard list
(sizes differing by at most one shard), opens each shard itself and decodes it a record batch at a time, so the
driver never holds the data; it only lists the shards (names and footers). More workers than shards is an error:
write more, smaller shards. A bad row raises SampleError naming the shard URI and the row.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from tracer1.data.schema import SCHEMA, Sample, SampleError, parquet_batches, to_row


@dataclass(frozen=True)
class Shard:
    uri: str     # as the user would write it (for messages)
    path: str    # inside its filesystem
    rows: int


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or URI."""
    scheme = urlsplit(uri).scheme
    if len(scheme) <= 1:  # a plain path (a Windows drive letter also parses as a one-letter scheme)
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    try:
        return pafs.FileSystem.from_uri(uri)
    except pa.ArrowInvalid as exc:
        if "Unrecognized filesystem type" not in str(exc):
            raise ValueError(f"{uri}: {exc}") from None
    try:
        from fsspec.core import url_to_fs  # noqa: PLC0415 — only for schemes pyarrow lacks

        filesystem, path = url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        raise ValueError(f"{uri}: no filesystem for {scheme}:// (pyarrow has file, s3, gs, hdfs; fsspec: {exc})") \
            from None
    return pafs.PyFileSystem(pafs.FSSpecHandler(filesystem)), path


def _join(uri: str, name: str) -> str:
    parts = urlsplit(uri)
    if len(parts.scheme) <= 1:
        return posixpath.join(uri, name)
    return parts._replace(path=posixpath.join(parts.path or "/", name)).geturl()


def list_shards(uri: str) -> list[Shard]:
    """The Parquet shards at `uri` (a directory, searched recursively, or one file), sorted by path, with their
    row counts from the footers."""
    filesystem, root = resolve(uri)
    info = filesystem.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"no samples at {uri}")
    if info.type == pafs.FileType.File:
        paths = [root]
    else:
        selector = pafs.FileSelector(root, recursive=True)
        paths = sorted(f.path for f in filesystem.get_file_info(selector)
                       if f.type == pafs.FileType.File and f.path.endswith(".parquet")
                       and not posixpath.basename(f.path).startswith("."))
    if not paths:
        raise FileNotFoundError(f"no *.parquet shards under {uri}")
    shards = []
    for path in paths:
        shard_uri = uri if path == root else _join(uri, posixpath.relpath(path, root))
        with filesystem.open_input_file(path) as f:
            try:
                rows = pq.ParquetFile(f).metadata.num_rows
            except (OSError, pa.ArrowInvalid) as exc:
                raise SampleError(f"{shard_uri}: not a readable Parquet file ({exc})") from None
        shards.append(Shard(shard_uri, path, rows))
    return shards


def shard_range(num_shards: int, worker: int, workers: int) -> range:
    """Worker `worker`'s contiguous share of `num_shards` shards; the first `num_shards % workers` workers
    take one more."""
    if not 0 <= worker < workers:
        raise ValueError(f"worker {worker} of {workers}: the index must be in 0..{workers - 1}")
    if num_shards < workers:
        raise ValueError(f"{num_shards} shards for {workers} workers: every worker needs at least one; write more, "
                         "smaller shards (write_shards rows_per_shard)")
    size, extra = divmod(num_shards, workers)
    start = worker * size + min(worker, extra)
    return range(start, start + size + (worker < extra))


def worker_shards(uri: str, worker: int, workers: int) -> list[Shard]:
    shards = list_shards(uri)
    return [shards[i] for i in shard_range(len(shards), worker, workers)]


def stream_worker_samples(uri: str, worker: int, workers: int, *, batch_size: int = 256, split: str | None = None,
                          shards: list[Shard] | None = None) -> Iterator[list[Sample]]:
    """Batches of up to `batch_size` samples from worker `worker`'s shards, in shard then row order, each shard
    decoded a record batch at a time. `shards`: the listing, when the caller already has it (a driver lists once
    and hands each worker the list)."""
    filesystem, _ = resolve(uri)
    listing = shards if shards is not None else list_shards(uri)
    for i in shard_range(len(listing), worker, workers):
        shard = listing[i]
        with filesystem.open_input_file(shard.path) as f:
            yield from parquet_batches(pq.ParquetFile(f), shard.uri, batch_size, split)


def write_shards(samples: Iterable[Sample], uri: str, rows_per_shard: int, *, rows_per_group: int = 512) -> list[str]:
    """Write `samples` (e.g. `tracer1.data.schema.iter_samples(existing_parquet)`) as `part-00000.parquet`,
    `part-00001.parquet`, ... of `rows_per_shard` rows (the last may be shorter) under `uri`; -> their URIs.
    Each shard is written under a temporary name and moved into place when complete; an invalid sample stops
    the writing with its id and problems."""
    if rows_per_shard < 1:
        raise ValueError(f"rows_per_shard must be positive, got {rows_per_shard}")
    filesystem, root = resolve(uri)
    filesystem.create_dir(root, recursive=True)
    written: list[str] = []
    pending: list[dict] = []

    def flush() -> None:
        name = f"part-{len(written):05d}.parquet"
        final, tmp = posixpath.join(root, name), posixpath.join(root, f".{name}.tmp")
        with filesystem.open_output_stream(tmp) as out, pq.ParquetWriter(out, SCHEMA, compression="zstd") as writer:
            for start in range(0, len(pending), rows_per_group):
                writer.write_table(pa.Table.from_pylist(pending[start:start + rows_per_group], schema=SCHEMA))
        filesystem.move(tmp, final)
        written.append(_join(uri, name))
        pending.clear()

    for sample in samples:
        problems = sample.problems()
        if problems:
            raise SampleError(f"sample {sample.sample_id!r}: " + "; ".join(problems))
        pending.append(to_row(sample))
        if len(pending) == rows_per_shard:
            flush()
    if pending:
        flush()
    return written


class WorkerShardReader:
    """A rollout worker's endless draw from its own shards: `take(k)` returns the next k samples, starting over
    at its first shard after its last (an epoch). `position` — (samples taken so far) — is all a checkpoint
    needs: `WorkerShardReader(..., skip=position)` continues where it stopped. Only the current record batch is
    held in memory."""

    def __init__(self, uri: str, worker: int, workers: int, *, batch_size: int = 256, split: str | None = None,
                 shards: list[Shard] | None = None, skip: int = 0):
        self.uri, self.worker, self.workers = uri, worker, workers
        self.batch_size, self.split = batch_size, split
        self.shards = shards if shards is not None else list_shards(uri)
        shard_range(len(self.shards), worker, workers)  # refuse more workers than shards now, not at first take
        self.position = 0
        self._stream: Iterator[list[Sample]] = iter(())
        self._buffer: list[Sample] = []
        self.take(skip)

    def _refill(self) -> None:
        for _ in range(2):  # a fresh epoch if the current one is used up; two empty passes = nothing to read
            batch = next(self._stream, None)
            if batch is not None:
                self._buffer.extend(batch)
                return
            self._stream = stream_worker_samples(self.uri, self.worker, self.workers, batch_size=self.batch_size,
                                                 split=self.split, shards=self.shards)
        raise ValueError(f"worker {self.worker} of {self.workers} has no samples"
                         f"{f' of split {self.split!r}' if self.split else ''} in its shards of {self.uri}")

    def take(self, k: int) -> list[Sample]:
        out: list[Sample] = []
        while len(out) < k:
            if not self._buffer:
                self._refill()
            n = min(k - len(out), len(self._buffer))
            out += self._buffer[:n]
            del self._buffer[:n]
        self.position += k
        return out


def main(argv: list[str] | None = None) -> int:
    """`python -m tracer1.data.shards IN OUT [--rows-per-shard N]`: re-write the samples at IN (a Parquet file or
    directory, e.g. a converter's output) as shards under OUT (a directory or s3:// / gs:// prefix)."""
    import argparse  # noqa: PLC0415

    from tracer1.data.schema import iter_samples  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m tracer1.data.shards", description=main.__doc__)
    parser.add_argument("source", help="tracer1 sample Parquet file or directory")
    parser.add_argument("dest", help="shard directory: a path, s3://bucket/prefix?region=..., gs://bucket/prefix")
    parser.add_argument("--rows-per-shard", type=int, default=2048, help="rows per shard (default 2048)")
    args = parser.parse_args(argv)
    written = write_shards(iter_samples(args.source), args.dest, args.rows_per_shard)
    print(f"{len(written)} shards under {args.dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
