"""Ray: connect (a local cluster with this machine's cores, or `--address`), and score items with Ray Data.

`map_batches` runs an actor pool (`concurrency` = workers); each actor loads the model once (`Scorer`) and
gets `cpus` CPUs, which also bound TensorFlow's threads. Items travel with their bytes, so INPUT need not be
on storage the nodes share; the model folder and the project's code must be at the same path on every node
(as in a KubeRay image). Output batches come back as they finish; their order does not matter (the merge
sorts by key), so the rows are the same whatever the number of workers.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.batch.inputs import WorkItem
from core.errors import BatchError

REPO = Path(__file__).resolve().parents[2]
Scored = list[tuple[dict[str, Any], dict[str, bytes]]]


@dataclass(frozen=True)
class Plan:
    """How many actors, with how many CPUs each, where."""

    workers: int
    cpus: float
    address: str


def connect(address: str | None, verbose: bool = False) -> bool:
    """Start a local Ray (this machine's cores, no dashboard) or join a cluster; False if Ray was already up."""
    import ray

    if ray.is_initialized():
        return False
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    runtime_env = {"env_vars": {"PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "3"}}
    try:
        # "local" starts a new instance: None would join any cluster `ray start` left running on this machine
        ray.init(address=address or "local", num_cpus=None if address else os.cpu_count(), include_dashboard=False,
                 logging_level=logging.INFO if verbose else logging.ERROR, log_to_driver=verbose,
                 runtime_env=runtime_env)
    except Exception as exc:  # Ray raises bare Exception for a node that did not start in its fixed 30 s
        where = f"reach the Ray cluster at {address}" if address else "start a local Ray"
        raise BatchError(f"cannot {where} ({str(exc).strip().splitlines()[0]})") from exc
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    return True


def plan(workers: int | None, address: str | None) -> Plan:
    """Workers (default: 1 locally, one per node on a cluster) and CPUs per worker (the cluster's CPUs shared)."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    total = float(ray.cluster_resources().get("CPU", 1.0))
    count = workers or (1 if address is None else max(1, len(nodes)))
    return Plan(count, max(1.0, float(int(total // count))), address or "local")


def fan_out(pending: list[dict[str, Any]], actor: type, kwargs: dict[str, Any], workers: int | None,
            address: str | None) -> Iterator[tuple[int, str]]:
    """Run `actor` (a Ray Data actor class: built once per worker with `kwargs`, called on one-row batches that
    return "index" and "record" columns) over `pending` rows (each with an "index"); yields (index, record) as
    results arrive, in any order. Starts a local Ray (or joins `address`) and shuts it down again if it started it."""
    import ray

    started = connect(address)
    try:
        chosen = plan(workers, address)
        scored = ray.data.from_items(pending, override_num_blocks=len(pending)).map_batches(
            actor, batch_size=1, batch_format="pyarrow", concurrency=chosen.workers, num_cpus=chosen.cpus,
            fn_constructor_kwargs={**kwargs, "cpus": int(chosen.cpus)})
        for batch in scored.iter_batches(batch_size=None, batch_format="pyarrow"):
            yield from zip(batch.column("index").to_pylist(), batch.column("record").to_pylist())
    finally:
        if started:
            ray.shutdown()


class RayScorer:
    """The Ray Data actor: one `Scorer` per actor, a batch of items in, their rows and overlays out."""

    def __init__(self, model_dir: str, methods: tuple[str, ...], overlays: bool, cpus: int) -> None:
        from core.batch.worker import Scorer

        self.scorer = Scorer(model_dir, methods, overlays, cpus)

    def __call__(self, batch: Any) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"record": [], "overlay_methods": [], "overlay_pngs": []}
        for row in batch.to_pylist():
            item = WorkItem(row["key"], row["kind"], tuple(row["names"]), tuple(row["blobs"]), row["sha256"],
                            row["error"])
            record, overlays = self.scorer.score(item)
            out["record"].append(json.dumps(record))
            out["overlay_methods"].append(list(overlays))
            out["overlay_pngs"].append(list(overlays.values()))
        return out


def ray_batches(items: list[WorkItem], model_dir: str, methods: tuple[str, ...], overlays: bool, chosen: Plan,
                batch_size: int) -> Iterator[Scored]:
    """Score `items` on the actor pool; yields each finished batch's (row, overlays) pairs."""
    import ray

    rows = [{"key": i.key, "kind": i.kind, "names": list(i.names), "blobs": list(i.blobs), "sha256": i.sha256,
             "error": i.error} for i in items]
    dataset = ray.data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // batch_size)))
    scored = dataset.map_batches(RayScorer, batch_size=batch_size, batch_format="pyarrow",
                                 concurrency=chosen.workers, num_cpus=chosen.cpus,
                                 fn_constructor_kwargs={"model_dir": model_dir, "methods": methods,
                                                        "overlays": overlays, "cpus": int(chosen.cpus)})
    for batch in scored.iter_batches(batch_size=None, batch_format="pyarrow"):
        yield [(json.loads(r), dict(zip(m, p))) for r, m, p in zip(batch.column("record").to_pylist(),
                                                                   batch.column("overlay_methods").to_pylist(),
                                                                   batch.column("overlay_pngs").to_pylist())]
