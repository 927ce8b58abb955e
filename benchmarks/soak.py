"""Soak the app with N concurrent Chromium sessions, loopback only, for R rounds each.

    python -m benchmarks.soak --sessions 8 --rounds 5 [--model DIR] [--scans DIR] [--out FILE.json]
                              [--with-training RUN_DIR --training-seconds 180]

One `streamlit run app.py` on 127.0.0.1 (a fresh state folder, so its audit trail holds only the soak), then N
threads, each with its own Playwright and headless Chromium, each round in a fresh browser session with its own
case id (`?case=SOAK-S<s>-R<r>`) and its own scan: upload -> classified ("assessed in") -> Explain page with
Score-CAM, SHAP and LIME ("Explanations ready") -> Classify -> "Build the case report" -> the PDF's download
button. Every request that is not to 127.0.0.1 is aborted (and counted).

Reported: p50/p95 seconds per step against the budgets (classify 0.3 s in the app; three maps 15 s), errors per
step, the server's RSS every second (after the warm-up session: start, max, end, growth), and whether every
session saw its own results: the page's case id field held its own case, and that case's audit records hold
only its own scan's SHA-256 (no crossed scans), and the audit chain verifies. With `--with-training RUN_DIR` (a
run the sidebar launcher started, still running): the run's images/s from its status.json for `--training-seconds`
before the sessions start and during them.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.training.launcher import default_data_dir  # noqa: E402
from tests.streamlit_server import CHROMIUM, CHROMIUM_ARGS, REPO, streamlit_app

STEPS = ("classify", "explain", "report")
BUDGETS = {"classify": 0.3, "explain": 15.0}  # classify: the app's own "assessed in"; explain: all three maps
STEP_TIMEOUT_MS = 600_000


def _scans(folder: Path, count: int) -> list[Path]:
    """`count` distinct scans (sorted, spread over the folder's classes), so a crossed result would show."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if len(files) < count:
        raise SystemExit(f"{folder} holds {len(files)} scans; the soak needs {count} distinct ones (--scans)")
    step = len(files) / count
    return [files[int(i * step)] for i in range(count)]


def _loopback_only(page: Any, blocked: list[str]) -> None:
    def route(r: Any) -> None:
        host = urlsplit(r.request.url).hostname
        if host in ("127.0.0.1", "localhost", None):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)


def _round(page: Any, url: str, case: str, scan: Path) -> dict[str, Any]:
    """One session's round: seconds per step (None when it failed), the case the page showed, the error."""
    from playwright.sync_api import expect

    out: dict[str, Any] = {"case": case, "scan": scan.name, "seconds": {}, "error": None, "shown_case": None}
    step = "open"
    try:
        page.goto(f"{url}/?case={case}")
        expect(page.locator("input[type=file]")).to_be_attached()
        step = "classify"
        t0 = time.perf_counter()
        page.locator("input[type=file]").set_input_files(str(scan))
        caption = page.get_by_text("assessed in").first
        expect(caption).to_be_visible()
        out["seconds"]["classify_page"] = time.perf_counter() - t0
        out["seconds"]["classify"] = float(caption.inner_text().rsplit("assessed in", 1)[1].split("s")[0])
        out["shown_case"] = page.get_by_role("textbox", name="Case id", exact=True).input_value()
        step = "explain"
        t0 = time.perf_counter()
        page.get_by_role("link", name="Explain").first.click()
        expect(page.get_by_text("Explanations ready")).to_be_visible()
        out["seconds"]["explain"] = time.perf_counter() - t0
        step = "report"
        page.get_by_role("link", name="Classify").first.click()
        expect(page.get_by_text("assessed in").first).to_be_visible()
        t0 = time.perf_counter()
        page.get_by_role("button", name="Build the case report").click()
        expect(page.get_by_role("button", name="Download the case report (PDF)")).to_be_visible()
        out["seconds"]["report"] = time.perf_counter() - t0
        if page.get_by_text("Traceback").count():
            raise RuntimeError("a traceback is shown")
    except Exception as exc:  # noqa: BLE001 - a soak counts failures per step and goes on
        out["error"] = f"{step}: {exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}"
    return out


def _session(index: int, url: str, scans: list[Path], results: list[dict], blocked: list[str]) -> None:
    """One simulated user: its own Playwright and Chromium; each round in a fresh browser context."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=STEP_TIMEOUT_MS)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for r, scan in enumerate(scans):
                context = browser.new_context(viewport={"width": 1400, "height": 1800})
                page = context.new_page()
                page.set_default_timeout(STEP_TIMEOUT_MS)
                _loopback_only(page, blocked)
                row = {"session": index, "round": r, **_round(page, url, f"SOAK-S{index}-R{r}", scan)}
                results.append(row)
                print(f"session {index} round {r}: {json.dumps({k: round(v, 2) for k, v in row['seconds'].items()})}"
                      f"{'  ERROR ' + row['error'] if row['error'] else ''}", file=sys.stderr, flush=True)
                context.close()
        finally:
            browser.close()


class RssSampler(threading.Thread):
    """The server process's resident memory (MB) once a second."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.samples, self.stop = pid, [], threading.Event()
        self.start_time = time.perf_counter()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.samples.append((round(time.perf_counter() - self.start_time, 1),
                                             round(int(line.split()[1]) / 1024, 1)))


def _training_rate(run_dir: Path, seconds: float) -> float | None:
    """Images per second of a running training run over `seconds` (its status.json's batch counter)."""
    batch_size = json.loads((run_dir / "config.json").read_text()).get("batch_size", 32)

    def read() -> tuple[float, int, int]:
        status = json.loads((run_dir / "status.json").read_text())
        return time.time(), int(status.get("batch") or 0), int(status.get("batches") or 1)

    done, (t_last, last, batches) = 0, read()
    t_first, deadline = t_last, time.time() + seconds
    while time.time() < deadline:
        time.sleep(2)
        with contextlib.suppress(OSError, ValueError):
            now, batch, batches = read()
            if (now, batch) != (t_last, last):
                done += batch - last if batch >= last else batches - last + batch
                t_last, last = now, batch
    return round(done * batch_size / (t_last - t_first), 1) if t_last > t_first and done else None


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 3)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 3)


def _own_results(results: list[dict], scans: dict[str, Path], state_dir: Path) -> dict[str, Any]:
    """Each case's audit records hold only its own scan's hash, the page showed its own case; the chain verifies."""
    from core.store.audit import AuditStore

    store = AuditStore(f"sqlite:///{state_dir / 'audit.sqlite3'}")
    crossed = []
    for row in results:
        own = hashlib.sha256(scans[row["case"]].read_bytes()).hexdigest()
        records = store.records(case_id=row["case"])
        hashes = {r.scan_hash for r in records if r.scan_hash}
        hashes |= {s.get("sha256") for r in records if r.event == "report" for s in r.result.get("scans", [])}
        if hashes - {own} or (row["error"] is None and (own not in hashes or row["shown_case"] != row["case"])):
            crossed.append(row["case"])
    chain = store.verify()
    store.dispose()
    return {"crossed_cases": crossed, "audit_chain": chain.summary(), "audit_chain_ok": chain.ok}


def _summary(results: list[dict], rss: list[tuple[float, float]], warm_rss: float | None) -> dict[str, Any]:
    steps = {}
    for step in (*STEPS, "classify_page"):
        values = [r["seconds"][step] for r in results if step in r["seconds"]]
        steps[step] = {"n": len(values), "p50": _percentile(values, 50), "p95": _percentile(values, 95),
                       "budget": BUDGETS.get(step),
                       "errors": sum(1 for r in results if (r["error"] or "").startswith(f"{step}:"))}
    memory = [mb for _, mb in rss]
    return {"steps": steps, "errors": [r["error"] for r in results if r["error"]],
            "rss_mb": {"after_warm_up": warm_rss, "max": max(memory, default=None),
                       "end": memory[-1] if memory else None,
                       "growth_after_warm_up": round(memory[-1] - warm_rss, 1) if memory and warm_rss else None}}


def soak(args: argparse.Namespace) -> dict[str, Any]:
    """Start the server, warm it up with one session, run the sessions, and check what they saw."""
    scans = _scans(Path(args.scans), args.sessions * args.rounds + 1)
    state_dir = Path(tempfile.mkdtemp(prefix="brainscan-soak-"))
    env = {"BRAINSCAN_STATE_DIR": str(state_dir), "BRAINSCAN_DB_URL": "", "BRAINSCAN_RUNS": str(state_dir / "runs")}
    if args.model:
        env["BRAINSCAN_MODEL"] = str(args.model)
    log = REPO / "test-artifacts" / "soak_server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"sessions": args.sessions, "rounds": args.rounds, "cpu_count": os.cpu_count()}
    if args.with_training:
        report["training_images_per_second_idle"] = _training_rate(Path(args.with_training), args.training_seconds)
    with log.open("w") as log_file, streamlit_app(env, log_file, seconds=600) as (url, server):
        sampler = RssSampler(server.pid)
        sampler.start()
        blocked: list[str] = []
        warm: list[dict] = []
        _session(-1, url, scans[-1:], warm, blocked)  # loads the model and the explainers once
        warm_rss = sampler.samples[-1][1] if sampler.samples else None
        results: list[dict] = []
        threads = [threading.Thread(target=_session, args=(s, url, scans[s * args.rounds:(s + 1) * args.rounds],
                                                           results, blocked)) for s in range(args.sessions)]
        training = {}
        if args.with_training:
            trainer = threading.Thread(target=lambda: training.update(rate=_training_rate(
                Path(args.with_training), args.training_seconds)))
            trainer.start()
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        report["wall_seconds"] = round(time.perf_counter() - started, 1)
        if args.with_training:
            trainer.join()
            report["training_images_per_second_with_sessions"] = training.get("rate")
        sampler.stop.set()
    by_case = {f"SOAK-S{s}-R{r}": scans[s * args.rounds + r] for s in range(args.sessions) for r in range(args.rounds)}
    report.update(_summary(results, sampler.samples, warm_rss), warm_up=warm[0]["seconds"] if warm else None,
                  warm_up_error=warm[0]["error"] if warm else None, blocked_requests=sorted(set(blocked)),
                  rss_samples=sampler.samples, rounds_detail=results, **_own_results(results, by_case, state_dir))
    return report


def _table(report: dict[str, Any]) -> str:
    lines = ["| step | n | p50 (s) | p95 (s) | budget (s) | errors |", "|---|---:|---:|---:|---:|---:|"]
    for step, row in report["steps"].items():
        lines.append(f"| {step} | {row['n']} | {row['p50']} | {row['p95']} | {row['budget'] or '-'} | {row['errors']} |")
    rss = report["rss_mb"]
    lines.append(f"\nRSS (MB): after warm-up {rss['after_warm_up']}, max {rss['max']}, end {rss['end']} "
                 f"(growth {rss['growth_after_warm_up']}); crossed cases: {report['crossed_cases'] or 'none'}; "
                 f"{report['audit_chain']}; requests off loopback blocked: {len(report['blocked_requests'])}")
    if "training_images_per_second_idle" in report:
        lines.append(f"training img/s: {report['training_images_per_second_idle']} without sessions, "
                     f"{report.get('training_images_per_second_with_sessions')} with them")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model", help="model folder (default: the app's default model)")
    parser.add_argument("--scans", default=str(Path(str(default_data_dir()))
                                                / "Testing"), help="folder of scans (one distinct scan per round)")
    parser.add_argument("--with-training", help="a running training run's folder: its img/s idle and under the soak")
    parser.add_argument("--training-seconds", type=float, default=180.0)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "soak.json"))
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        raise SystemExit(f"Chromium not found at {CHROMIUM} (.ci/browser-deps.sh)")
    report = soak(args)
    report["command"] = "python -m benchmarks.soak " + " ".join(argv if argv is not None else sys.argv[1:])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(_table(report))
    print(f"full report: {args.out}")
    return 0 if not report["errors"] and not report["crossed_cases"] and report["audit_chain_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
