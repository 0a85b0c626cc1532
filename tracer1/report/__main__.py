"""`python -m tracer1.report RUN_DIR [RUN_DIR ...] [--open]`: (re)build the report of each run directory."""

from __future__ import annotations

import argparse
import sys
import webbrowser

from tracer1.report import ReportError, write_report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracer1.report", description=__doc__.split(":", 1)[1].strip())
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="a training run, an evaluation's output or a pipeline directory")
    parser.add_argument("--open", action="store_true", help="open each report in the default web browser")
    args = parser.parse_args(argv)
    status = 0
    for run_dir in args.run_dirs:
        try:
            path = write_report(run_dir)
        except ReportError as exc:
            print(f"tracer1.report: {exc}", file=sys.stderr)
            status = 2
            continue
        print(f"report: {path}")
        if args.open:
            webbrowser.open(path.resolve().as_uri())
    return status


if __name__ == "__main__":
    sys.exit(main())
