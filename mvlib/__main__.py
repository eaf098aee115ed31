"""Command line: `python -m mvlib prepare|train|reproduce ...` (`train <config.json>` is what
a cluster job calls)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from mvlib.engine.train import train_file
from mvlib.experiment import profiles
from mvlib.experiment.prepare import SOURCES, prepare


def _option(text: str) -> tuple[str, object]:
    """'key=value' -> (key, value parsed as JSON, else the text)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise SystemExit(f"--option {text!r}: expected KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mvlib")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="build the canonical data set of a source")
    p.add_argument("--dataset", default="synthetic", choices=SOURCES)
    p.add_argument("--data-root", default=None)
    p.add_argument("--profile", default=None, choices=sorted(profiles.PROFILES))
    p.add_argument("--executor", default=None, choices=("local", "slurm"),
                   help="where a real source's preparation jobs run (default: "
                        "$MVLIB_EXECUTOR, else local processes); slurm: a job array")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a knob of prepare (VALUE as JSON, else text), e.g. "
                        "birads_labels='{\"malignant\": [4, 5], \"benign\": [3]}'")
    t = sub.add_parser("train", help="run one RunConfig (JSON file) into the run store")
    t.add_argument("config")
    t.add_argument("--store", default=None)
    r = sub.add_parser("reproduce", help="re-run every numbered notebook with papermill")
    r.add_argument("--profile", default="laptop", choices=sorted(profiles.PROFILES))
    r.add_argument("--dataset", default="synthetic", choices=SOURCES)
    r.add_argument("--data-root", default=None)
    r.add_argument("--executor", default=None, choices=("local", "slurm"),
                   help="where runs train (default: $MVLIB_EXECUTOR, else local); slurm "
                        "options: MVLIB_SLURM_* variables (notebooks/guide.md)")
    r.add_argument("--runs-per-gpu", type=int, default=None,
                   help="runs sharing each GPU (local) or each SLURM job (default: "
                        "$MVLIB_RUNS_PER_GPU, else 1)")
    r.add_argument("--reseed", type=int, default=0,
                   help="re-run with another seed list: repetitions from this seed on")
    r.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a knob of the data set, as prepare takes it, e.g. "
                        "patch_weights=/data/sample_patch_model.p (heatmaps for a source "
                        "without them)")
    s = sub.add_parser("stability", help="which verdicts kept their status between two "
                                         "re-runs' figures (e.g. laptop laptop-reseed100)")
    s.add_argument("first")
    s.add_argument("second")
    sub.add_parser("readme", help="rewrite the README's generated blocks from figures/")
    args = parser.parse_args(argv)
    try:
        _run(args)
    except ValueError as e:  # DatasetError, ImageError, bad options: the user's to fix
        if os.environ.get("MVLIB_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        print("(MVLIB_DEBUG=1 shows the traceback)", file=sys.stderr)
        sys.exit(1)


def _run(args: argparse.Namespace) -> None:
    """The subcommand's work."""
    if args.command == "prepare":
        from mvlib.executors.sweep import preparation_jobs

        prof = profiles.get(args.profile, executor=args.executor)
        data = prepare(args.dataset, prof.name, args.data_root,
                       run_slices=preparation_jobs(prof), **dict(_option(o) for o in args.option))
        print(data.root)
        print(data.counts().to_string())
        if (data.root / "report.json").exists():
            from mvlib.data.real import load_report

            print(load_report(data).table().to_string())
    elif args.command == "train":
        run = train_file(Path(args.config), Path(args.store) if args.store else None)
        print(run.path, run.status())
    elif args.command == "stability":
        from mvlib.study.claims import stability_report

        print(stability_report(args.first, args.second))
    elif args.command == "reproduce":
        # papermill and nbformat: not for the train jobs (seconds)
        from mvlib.tools import notebooks

        if args.runs_per_gpu is not None:  # the notebooks' kernels inherit it
            if args.runs_per_gpu < 1:
                raise ValueError(f"--runs-per-gpu must be at least 1, not {args.runs_per_gpu}")
            os.environ["MVLIB_RUNS_PER_GPU"] = str(args.runs_per_gpu)

        notebooks.reproduce(args.profile, args.dataset, args.data_root, args.reseed,
                            args.executor, dict(_option(o) for o in args.option))
        if args.profile == "laptop" and args.dataset == "synthetic" and not args.reseed:
            from mvlib.tools import readme
            readme.update()  # the committed figures changed: so do the README's numbers
    elif args.command == "readme":
        from mvlib.tools import readme
        print("README.md updated" if readme.update() else "README.md is current")


if __name__ == "__main__":
    main()
