"""python -m tracer1.eval.benchmarks --benchmark NAME --predictions PREDS.jsonl --data DATA [--out RESULT.json]

DATA is converted samples (a .parquet file or a directory of them, as `python -m tracer1.data.convert` writes)
or, for a benchmark with a converter, the raw dataset itself, converted on the fly (sample ids are the same
either way: "<source>/<episode>/<step>"). Prints a table and writes the full result as JSON (default: next to
the predictions, PREDS.<benchmark>.json). Exit code 1 with a message naming the file and row on bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tracer1.atomic import save_json_atomic
from tracer1.data.schema import SPLITS, Sample, SampleError, read_samples
from tracer1.eval.benchmarks import BENCHMARKS, BenchmarkError, read_predictions, score_benchmark

# benchmark -> the `tracer1.data.convert` format that reads its raw data (GAIA-style data has no converter)
CONVERTERS = {"androidcontrol": "androidcontrol", "gui-odyssey": "gui-odyssey", "mind2web": "mind2web",
              "gta": "gta"}


def load_samples(benchmark: str, data: str | Path, split: str | None = None,
                 images: str | Path | None = None) -> list[Sample]:
    """The samples at `data`: Parquet samples (filtered to `split` when given), else the raw dataset converted
    with the benchmark's converter (`images`: where its image files are)."""
    path = Path(data)
    if not path.exists():
        raise BenchmarkError(f"{path}: no such file or directory")
    if path.suffix == ".parquet" or (path.is_dir() and any(path.rglob("*.parquet"))):
        return read_samples(path, split=split)
    if benchmark not in CONVERTERS:
        raise BenchmarkError(f"{path}: not converted samples (no .parquet) and {benchmark} has no converter")
    from tracer1.data.convert import Options, convert_samples  # noqa: PLC0415 — converters import the envs

    return convert_samples(CONVERTERS[benchmark], path, options=Options(images=Path(images) if images else None))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracer1.eval.benchmarks",
                                     description="Score planner predictions by a public benchmark's rules.")
    parser.add_argument("--benchmark", required=True, choices=list(BENCHMARKS), help="the scoring rules to use")
    parser.add_argument("--predictions", required=True,
                        help="JSON lines: {sample_id, plan | step | executed, result?} per line")
    parser.add_argument("--data", required=True, help="converted samples (.parquet file or directory) or the raw "
                                                      "dataset (converted on the fly)")
    parser.add_argument("--split", choices=SPLITS, default=None, help="score only this split of Parquet samples")
    parser.add_argument("--images", default=None, help="raw data: directory of the image files its records name")
    parser.add_argument("--only-predicted", action="store_true",
                        help="score only the samples that have a prediction (default: a missing one is wrong)")
    parser.add_argument("--out", default=None, help="result JSON (default: PREDICTIONS.<benchmark>.json)")
    args = parser.parse_args(argv)
    try:
        predictions = read_predictions(args.predictions)
        samples = load_samples(args.benchmark, args.data, args.split, args.images)
        result = score_benchmark(args.benchmark, predictions, samples, only_predicted=args.only_predicted)
    except (BenchmarkError, SampleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out) if args.out else Path(args.predictions).with_suffix(f".{args.benchmark}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_json_atomic(out, result.to_dict())
    print(result.table())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
