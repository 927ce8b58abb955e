"""`python -m core batch`: the rows of a small tree (real scans, a duplicate, a corrupt file, a CT and an MR
DICOM series, a zip), a job killed after its first part file then resumed, and a two-process local Ray
cluster giving the same rows as one in-process worker. The tiny model keeps the forward passes cheap."""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pydicom
import pytest

from core.batch.rows import TIMING_COLUMNS
from core.batch.runner import BatchOptions, run_batch
from tests.conftest import REAL_DATA
from tests.dicom_builder import mr_slice

pytestmark = pytest.mark.data
REAL = ["glioma/Te-gl_0010.jpg", "meningioma/Te-me_0010.jpg", "notumor/Te-no_0010.jpg"]


def _ct(data: bytes) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.Modality = "CT"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scans/ (3 real scans, a duplicate, a corrupt file, a CSV), ct/ and mr/ series, scans.zip (2 members)."""
    if not (REAL_DATA / "Testing").is_dir():
        pytest.skip(f"real data not found at {REAL_DATA} (set BRAINSCAN_DATA)")
    root = tmp_path_factory.mktemp("tree")
    (root / "scans").mkdir()
    for rel in REAL:
        shutil.copy(REAL_DATA / "Testing" / rel, root / "scans" / Path(rel).name)
    shutil.copy(REAL_DATA / "Testing" / REAL[0], root / "scans" / "copy-of-gl_0010.jpg")
    (root / "scans" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "scans" / "notes.csv").write_text("not a scan\n")
    rng = np.random.default_rng(0)
    grays = [rng.integers(0, 256, (48, 48), dtype=np.uint8) for _ in range(3)]
    for name, convert in (("ct", _ct), ("mr", lambda b: b)):
        (root / name).mkdir()
        uid = f"1.2.826.0.1.3680043.8.498.{10 if name == 'ct' else 11}"
        for k, gray in enumerate(grays):
            (root / name / f"s{k}.dcm").write_bytes(convert(mr_slice(gray, 5.0 * k, k + 1, series_uid=uid)))
    with zipfile.ZipFile(root / "scans.zip", "w") as archive:
        for rel in ("pituitary/Te-pi_0010.jpg", "glioma/Te-gl_0011.jpg"):
            archive.write(REAL_DATA / "Testing" / rel, f"inner/{Path(rel).name}")
    return root


def _stable(table) -> list[dict]:
    """Rows without the timing columns (the only values that differ from run to run)."""
    return table.drop_columns(list(TIMING_COLUMNS)).to_pylist()


@pytest.fixture(scope="module")
def reference(tree: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """An uninterrupted in-process run through the CLI: (output path, table)."""
    from core.cli import main

    out = tmp_path_factory.mktemp("ref") / "rows.parquet"
    assert main(["batch", str(tree), "--out", str(out), "--workers", "0", "--model", str(tiny_model_dir),
                 "--batch-size", "3"]) == 0
    return out, pq.read_table(out)


def test_rows_of_a_tree_with_a_corrupt_file_series_and_zip(tree: Path, tiny_model, reference):
    from core.model.inference import classify

    out, table = reference
    rows = {Path(r["key"]).relative_to(tree).as_posix(): r for r in table.to_pylist()}
    assert list(rows) == sorted(rows) and set(rows) == {
        "ct/series", "mr/series", "scans.zip/inner/Te-gl_0011.jpg", "scans.zip/inner/Te-pi_0010.jpg",
        "scans/Te-gl_0010.jpg", "scans/Te-me_0010.jpg", "scans/Te-no_0010.jpg", "scans/copy-of-gl_0010.jpg",
        "scans/corrupt.jpg"}
    corrupt = rows["scans/corrupt.jpg"]
    assert corrupt["status"] == "error" and corrupt["error_type"] == "ImageDecodeError" and corrupt["state"] is None
    ct, mr = rows["ct/series"], rows["mr/series"]
    assert (ct["kind"], ct["state"], ct["refusal_layer"], ct["n_slices"]) == ("series", "refused", "metadata", 3)
    assert ct["series_refused_slices"] == 3 and ct["series_summary"].startswith("Not classified")
    assert mr["kind"] == "series" and mr["n_slices"] == 3 and 1 <= mr["series_top_slice"] <= 3
    model, card = tiny_model
    for rel in ("scans/Te-gl_0010.jpg", "scans/Te-no_0010.jpg"):
        expected = classify(model, card, tree / rel, name=str(tree / rel)).to_dict()
        assert {k: rows[rel][k] for k in expected} == {**expected, "probabilities": rows[rel]["probabilities"],
                                                     "raw_probabilities": rows[rel]["raw_probabilities"]}
        assert rows[rel]["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)
    copy = rows["scans/copy-of-gl_0010.jpg"]
    assert copy["sha256"] == rows["scans/Te-gl_0010.jpg"]["sha256"] and copy["file"].endswith("copy-of-gl_0010.jpg")
    summary = out.with_suffix(".summary.json").read_text()
    assert '"skipped_files": 1' in summary and '"ImageDecodeError": 1' in summary and '"errors": 1' in summary


class Killed(Exception):
    """The simulated kill: raised by the progress callback once the first part file is written."""


def test_killed_after_the_first_part_then_resumed_gives_the_same_parquet(tree: Path, tiny_model_dir: Path,
                                                                       reference, tmp_path: Path):
    out = tmp_path / "rows.parquet"
    options = BatchOptions(str(tiny_model_dir), workers=0, batch_size=3)

    def kill(done: int, total: int) -> None:
        if done > 0:
            raise Killed

    with pytest.raises(Killed):
        run_batch([tree], out, options, progress=kill)
    parts = list(tmp_path.glob(".rows.parquet.parts/*/part-*.parquet"))
    assert not out.exists() and len(parts) == 1  # the one finished batch is kept; nothing half-written
    summary, table = run_batch([tree], out, options)
    assert summary.reused == 3 and summary.done_now == 5 and summary.rows == 9
    assert _stable(pq.read_table(out)) == _stable(reference[1]) == _stable(table)
    again, _ = run_batch([tree], out, options)
    assert again.done_now == 0 and again.reused == 9


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(*args: str, env: dict[str, str]) -> None:
    done = subprocess.run([str(Path(sys.executable).parent / "ray"), *args], env=env, capture_output=True, text=True,
                          timeout=300)
    if done.returncode:  # e.g. Ray's fixed 30 s node start-up deadline on a starved CPU: say so, not just "exit 1"
        raise RuntimeError(f"ray {args[0]} failed: {(done.stderr or done.stdout).strip().splitlines()[-1]}")


@pytest.fixture(scope="module")
def ray_cluster():
    """A head and one more worker node on loopback (1 CPU each), stopped at the end; yields the address."""
    import secrets

    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit in 107 characters
    token = Path(temp) / "auth_token"  # Ray >= 2.5x: a node joins a cluster only with the cluster's token
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    saved = {key: os.environ.get(key) for key in auth}
    os.environ.update(auth)  # the driver in this process (run_batch, ray_scorer) joins with the same token
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--num-cpus", "1", "--disable-usage-stats", "--node-ip-address", "127.0.0.1"]
    try:
        _ray("start", "--head", "--port", str(port), "--include-dashboard=false", f"--temp-dir={temp}", *common,
             env=env)
        _ray("start", "--address", f"127.0.0.1:{port}", *common, env=env)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(temp)
        shutil.rmtree(temp, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _stop(temp: str) -> None:
    """End this cluster's processes only (their command lines name its temp folder; workers exit with their
    raylet), where `ray stop` would end every Ray on the machine."""
    import signal
    import time

    def ours() -> list[int]:
        pids = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if temp in cmdline.read_bytes().decode(errors="replace"):
                    pids.append(int(cmdline.parent.name))
            except OSError:
                continue
        return pids

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in ours():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        for _ in range(30):
            if not ours():
                return
            time.sleep(1)


def test_two_ray_nodes_give_the_rows_of_one_worker(tree: Path, tiny_model_dir: Path, reference, ray_cluster,
                                                   tmp_path: Path):
    options = BatchOptions(str(tiny_model_dir), address=ray_cluster, workers=2, batch_size=2)
    summary, table = run_batch([tree], tmp_path / "rows.parquet", options)
    assert summary.workers == 2 and summary.address == ray_cluster and summary.done_now == 8  # + 1 error row
    assert _stable(table) == _stable(reference[1])


def _without_seconds(records: list[dict]) -> list[dict]:
    return [{**r, "maps": {k: {m: v for m, v in values.items() if m != "seconds"} for k, values in r["maps"].items()}}
            for r in records]


def test_localisation_fanned_out_on_ray_makes_the_sequential_records(tiny_model, tiny_model_dir: Path, ray_cluster):
    from core.batch.localisation import ray_scorer
    from core.data.masks import MaskRow
    from core.xai.localisation import MaskedScan, score_scans
    from tests.synthetic import synthetic_scan

    model, card = tiny_model
    rng = np.random.default_rng(1)
    scans = []
    for i, name in enumerate(["glioma", "meningioma", "pituitary"]):
        image = synthetic_scan(name, card.image_size, rng).astype(np.float32)
        mask = np.zeros((card.image_size,) * 2, bool)
        mask[8 + 4 * i:20 + 4 * i, 8:20] = True
        row = MaskRow("Testing", name, f"Testing/{name}/s{i}.png", f"m{i}.png", float(mask.mean()), "", f"src{i}")
        scans.append(MaskedScan(row, image, mask, card.class_names.index(name), True))
    options = {"scorecam": {}}
    expected = score_scans(model, scans, ["scorecam"], options, seed=3)
    fanned = ray_scorer(str(tiny_model_dir), ray_cluster, 2)(model, scans, ["scorecam"], options, seed=3)
    assert _without_seconds(fanned) == _without_seconds(expected)


def test_xai_eval_fanned_out_on_ray_makes_the_sequential_scores(tiny_model, tiny_model_dir: Path, ray_cluster):
    """The perturbation metrics and the sanity check, scored on two Ray nodes, equal the in-process loop's."""
    from core.batch.xai_eval import ray_image_scorer
    from core.xai.evaluation import QUICK_METRIC_OPTIONS, EvalImage, score_images
    from core.xai.metrics import metric_options
    from tests.synthetic import synthetic_scan

    model, card = tiny_model
    rng = np.random.default_rng(2)
    images = [EvalImage(f"Testing/{name}/s{i}.png", synthetic_scan(name, card.image_size, rng).astype(np.float32),
                        card.class_names.index(name), card.class_names.index(name))
              for i, name in enumerate(["glioma", "meningioma", "notumor"])]
    metric_opts = metric_options()
    for name, values in QUICK_METRIC_OPTIONS.items():
        metric_opts[name].update(values)
    options = {"scorecam": {}}
    expected = score_images(model, card, images, options, metric_opts, seed=5, sanity_n=2)
    fanned = ray_image_scorer(str(tiny_model_dir), ray_cluster, 2)(model, card, images, options, metric_opts, 5, 2)

    def stable(scored: list) -> list:
        return [({name: {k: v for k, v in row.items() if k != "seconds"} for name, row in s.rows.items()}, s.sanity)
                for s in scored]

    assert [sorted(s.sanity) for s in fanned] == [["scorecam"], ["scorecam"], []]
    np.testing.assert_equal(stable(fanned), stable(expected))  # NaN == NaN here (an undefined correlation)
