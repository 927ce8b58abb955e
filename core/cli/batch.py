"""`python -m core batch`: score (and explain) folders, zips or list files into one resumable Parquet file on Ray."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from core.cli.common import model_arg
from core.errors import BatchError


def rate_progress(label: str) -> Callable[[int, int], None]:
    """A progress bar on stderr with the rate and the time left (tqdm), advanced to `done` of `total`."""
    from tqdm import tqdm

    bar: dict[str, Any] = {}

    def show(done: int, total: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, desc=label, unit="item", file=sys.stderr, dynamic_ncols=True)
        bar["bar"].update(done - bar["bar"].n)
        if done >= total:
            bar["bar"].close()

    return show


def cmd_batch(args: argparse.Namespace) -> int:
    from core.batch.runner import BatchOptions, run_batch
    from core.settings import settings
    from core.xai.explainers import get_spec

    methods = tuple(m.strip() for m in (args.explain or "").split(",") if m.strip())
    for method in methods:
        get_spec(method)
    if args.overlays and not methods:
        raise BatchError("--overlays saves the maps of --explain; name the methods (e.g. --explain scorecam)")
    if args.batch_size < 1:
        raise BatchError("--batch-size must be at least 1")
    if args.workers is not None and args.workers < 0:
        raise BatchError("--workers must be 0 (in this process, no Ray) or more")
    options = BatchOptions(args.model, methods, args.overlays, args.address, args.workers, args.batch_size,
                           settings().verbose)
    summary, _ = run_batch(args.inputs, args.out, options, progress=rate_progress("scoring"))
    for line in summary.lines():
        print(line)
    print(f"wrote {args.out}")
    return 0


def add_subcommands(sub: Any) -> None:
    """Register `batch`."""
    p = sub.add_parser("batch", help="score folders, zips or list files into one Parquet file (resumable; Ray)")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="folder (walked), image / DICOM / zip file, or list file (.txt/.lst, one path a line)")
    p.add_argument("--out", required=True, help="the Parquet file to write (a rerun continues it)")
    p.add_argument("--explain", help="methods to explain each scan with, e.g. scorecam,lime (map statistics "
                   "in the rows)")
    p.add_argument("--overlays", metavar="DIR", help="save each explanation as DIR/<hash>-<method>.png")
    p.add_argument("--address", help="Ray cluster address (e.g. ray://head:10001 or auto); default: a local "
                   "Ray on this machine's cores")
    p.add_argument("--workers", type=int, help="model replicas (Ray actors); default 1 locally, one per node on "
                   "a cluster; 0 = in this process without Ray")
    p.add_argument("--batch-size", type=int, default=16, help="items per batch (the most a killed job loses "
                   "per worker)")
    model_arg(p)
    p.set_defaults(func=cmd_batch)
