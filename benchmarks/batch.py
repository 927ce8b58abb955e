"""`python -m core batch` throughput against the plain `predict` loop, Ray's overhead, and a scaling table.

    python benchmarks/batch.py [--data DIR] [--n 300] [--model DIR] [--out benchmarks/results/batch.json]

One run, same scans, one after the other: the `predict` loop (model loaded once, `classify` per file, as
`python -m core predict` does), `batch` in this process (`--workers 0`), and `batch` on a local Ray with 1 and
2 workers. Each `batch` figure is the whole command (inputs hashed, Ray and the actors started, the model
loaded, Parquet merged) and its steady rate (first finished batch to last). Ray's overhead: a no-op task's and
an actor call's round trip, and tasks per second when 1,000 are submitted at once. The scans are the first
n/4 of each class of Testing/ (sorted names), passed as a list file. The table of 100,000 slices on 1, 8 and 64
nodes is computed from the measured per-worker rate and the per-batch overhead, not measured.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.batch.rows import TIMING_COLUMNS  # noqa: E402
from core.batch.runner import BatchOptions, run_batch  # noqa: E402
from core.io.atomic import atomic_write_text  # noqa: E402
from core.model.factory import default_model_dir  # noqa: E402
from core.training.launcher import default_data_dir  # noqa: E402

SLICES = 100_000


def _scans(data: Path, n: int) -> list[Path]:
    """The first n / classes scans of each Testing class; n = 0: all of Testing."""
    classes = sorted(p for p in (data / "Testing").iterdir() if p.is_dir())
    return [f for c in classes for f in sorted(c.glob("*.jpg"))[: (n // len(classes)) or None]]


def predict_loop(files: list[Path], model_dir: str) -> dict:
    """The `predict` command's loop in this process: load, one warm-up file, then every file."""
    from core.model.factory import load_model
    from core.model.inference import classify
    from core.model.trust import load_trust

    start = time.perf_counter()
    model, card = load_model(model_dir)
    trust = load_trust(model_dir, card.class_names)
    classify(model, card, files[0], trust=trust)
    ready = time.perf_counter()
    for f in files:
        classify(model, card, f, name=str(f), trust=trust)
    end = time.perf_counter()
    return {"wall_seconds": end - start, "load_seconds": ready - start,
            "steady_items_per_second": len(files) / (end - ready)}


def batch_run(list_file: Path, workdir: Path, model_dir: str, workers: int, batch_size: int) -> dict:
    """One whole `batch` job (fresh output) and its steady rate from the progress callback's times."""
    marks: list[tuple[float, int]] = []
    start = time.perf_counter()
    summary, table = run_batch([list_file], workdir / f"w{workers}.parquet",
                           BatchOptions(model_dir, workers=workers, batch_size=batch_size),
                           progress=lambda done, total: marks.append((time.perf_counter(), done)))
    wall = time.perf_counter() - start
    done = [(t, d) for t, d in marks if d > 0]
    (t0, d0), (t1, d1) = done[0], done[-1]
    steady = (d1 - d0) / (t1 - t0) if t1 > t0 else None
    return {"workers": workers, "wall_seconds": wall, "items": summary.done_now,
            "whole_job_items_per_second": summary.done_now / wall, "steady_items_per_second": steady,
            "first_batch_seconds": t0 - start, "engine": table.column("engine")[0].as_py(),
            "rows": table.drop_columns(list(TIMING_COLUMNS)).to_pylist()}


def ray_overhead() -> dict:
    """Round trips of a no-op task and an actor call, and no-op tasks per second submitted 1,000 at once."""
    import ray

    from core.batch.cluster import connect

    connect(None)

    @ray.remote(num_cpus=0)
    def noop() -> int:
        return 0

    @ray.remote(num_cpus=0)
    class Echo:
        def call(self) -> int:
            return 0

    ray.get([noop.remote() for _ in range(20)])
    echo = Echo.remote()
    ray.get(echo.call.remote())
    task, actor = [], []
    for _ in range(200):
        t = time.perf_counter()
        ray.get(noop.remote())
        task.append(time.perf_counter() - t)
        t = time.perf_counter()
        ray.get(echo.call.remote())
        actor.append(time.perf_counter() - t)
    t = time.perf_counter()
    ray.get([noop.remote() for _ in range(1000)])
    per_second = 1000 / (time.perf_counter() - t)
    ray.shutdown()
    return {"task_round_trip_ms": 1000 * statistics.median(task),
            "actor_call_round_trip_ms": 1000 * statistics.median(actor), "tasks_per_second_1000_at_once": per_second}


def scaling(per_worker: float, overhead_s: float, batch_size: int, startup_s: float, workers_per_node: int) -> list[dict]:
    """Paper estimate for SLICES slices: every worker at the measured rate, plus the per-batch overhead."""
    per_batch = batch_size / per_worker + overhead_s
    rows = []
    for nodes in (1, 8, 64):
        workers = nodes * workers_per_node
        seconds = startup_s + (SLICES / batch_size) * per_batch / workers
        rows.append({"nodes": nodes, "workers": workers, "hours": seconds / 3600, "slices_per_second": SLICES / seconds})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(default_data_dir()))
    parser.add_argument("--n", type=int, default=300, help="Testing scans (an equal share per class); 0: all")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model", default=str(default_model_dir()))
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/batch.json"))
    parser.add_argument("--workers", default="0,1,2", help="batch runs to make (0 = in process, no Ray: first, "
                        "as the reference for the rows)")
    args = parser.parse_args()
    files = _scans(Path(args.data), args.n)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        list_file = workdir / "scans.txt"
        list_file.write_text("\n".join(str(f) for f in files) + "\n")
        result = {"n": len(files), "cpus": os.cpu_count(), "batch_size": args.batch_size,
                  "load_average_at_start": os.getloadavg(), "predict_loop": predict_loop(files, args.model)}
        print(json.dumps(result["predict_loop"]), flush=True)
        result["batch"] = []
        reference: list[dict] = []
        for workers in (int(w) for w in args.workers.split(",")):
            run = batch_run(list_file, workdir, args.model, workers, args.batch_size)
            rows = run.pop("rows")
            reference = reference if workers else rows
            run["rows_identical_to_in_process"] = rows == reference  # timings aside
            result["batch"].append(run)
            print(json.dumps(run), flush=True)
            atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")  # kept if a later stage fails
    result["ray"] = ray_overhead()
    result["load_average_at_end"] = os.getloadavg()
    loop = result["predict_loop"]["steady_items_per_second"]
    for row in result["batch"]:
        row["steady_vs_predict_loop"] = (row["steady_items_per_second"] or 0) / loop
    two = next(r for r in result["batch"] if r["workers"] == 2)  # one CPU per worker
    result["per_worker_items_per_second"] = two["steady_items_per_second"] / 2
    overhead = result["ray"]["actor_call_round_trip_ms"] / 1000
    result["scaling_100k"] = scaling(result["per_worker_items_per_second"], overhead, args.batch_size,
                                     two["first_batch_seconds"], workers_per_node=os.cpu_count() or 1)
    print(json.dumps(result, indent=1))
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
