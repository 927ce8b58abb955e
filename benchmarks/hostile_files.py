"""Run `python -m core predict` on every file of the hostile corpus under `/usr/bin/time -v`.

    python benchmarks/hostile_files.py [--model DIR] [--keep DIR] [--json OUT] [--jobs N]

Prints a Markdown table: file, exit code, the CLI's message (its one `error:` line, or the prediction),
peak resident memory (MB) of the whole process (Python + TensorFlow + model + decoding), and whether a
traceback appeared. The corpus comes from tests/hostile.py (written to a temporary folder). Needs GNU time
(`apt-get install time`). Exits non-zero if any run shows a traceback, goes over the memory limit, or a
refused file does not give the expected reason.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.hostile import GATE, write_corpus  # noqa: E402

LIMIT_MB = 1536


def run_one(path: Path, model: str | None) -> dict:
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "core", "predict", str(path)]
    if model:
        command += ["--model", model]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    cli_err = proc.stderr.split("\tCommand being timed:")[0]
    errors = [line for line in cli_err.splitlines() if line.startswith("error:")]
    out = proc.stdout.strip().splitlines()
    return {"file": path.name, "exit_code": proc.returncode,
            "message": (errors[0][len("error: "):] if errors else (out[0] if out else "")).replace(f"{path}: ", "", 1),
            "error_lines": len(errors), "peak_rss_mb": round(int(rss.group(1)) / 1024) if rss else None,
            "traceback": "Traceback" in cli_err, "other_stderr": [line for line in cli_err.splitlines()
                                                                  if line.strip() and not line.startswith("error:")]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (default: the CLI's default, the bundled model)")
    parser.add_argument("--keep", help="write the corpus here instead of a temporary folder")
    parser.add_argument("--json", help="also write the rows as JSON")
    parser.add_argument("--skip", help="comma-separated file names to leave out (e.g. measured in an earlier run)")
    parser.add_argument("--only", help="comma-separated file names to measure (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="CLI processes at once (peak RSS is still per process)")
    args = parser.parse_args()
    if not Path("/usr/bin/time").exists():
        sys.exit("needs GNU time at /usr/bin/time (apt-get install time)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        expected = write_corpus(folder)
        skip = set(filter(None, (args.skip or "").split(",")))
        only = set(filter(None, (args.only or "").split(",")))
        expected = {n: r for n, r in expected.items() if n not in skip and (not only or n in only)}
        results = {}
        with ThreadPoolExecutor(args.jobs) as pool:  # one process per file either way: RSS is per process
            futures = {pool.submit(run_one, folder / n, args.model): n for n in expected}
            for future in as_completed(futures):
                row = results[futures[future]] = future.result()
                print(json.dumps(row), file=sys.stderr, flush=True)
        rows = []
        for name, reason in expected.items():
            row = results[name]
            row["expected"] = reason or "classified"
            row["ok"] = (not row["traceback"] and row["peak_rss_mb"] is not None and row["peak_rss_mb"] < LIMIT_MB
                         and ((reason is None and row["exit_code"] == 0)
                              or (reason is not None and row["exit_code"] == 0 and not row["error_lines"]
                                  and row["message"].startswith("refused"))   # the gate's answer
                              or (reason not in (None, GATE) and row["exit_code"] == 1 and row["error_lines"] == 1
                                  and reason in row["message"])))
            rows.append(row)
    print("| file | exit | message | peak RSS (MB) |\n|---|---:|---|---:|")
    for row in rows:
        message = row["message"].replace("|", "\\|")
        message = re.sub(r"^(\w+) \((\d+\.\d)%\).*$", r"classified: \1 (\2%)", message)
        print(f"| `{row['file']}` | {row['exit_code']} | {message} | {row['peak_rss_mb']} |")
    worst = max(rows, key=lambda r: r["peak_rss_mb"] or 0)
    failed = [r["file"] for r in rows if not r["ok"]]
    print(f"\n{len(rows)} files, {sum(r['traceback'] for r in rows)} tracebacks, peak RSS max "
          f"{worst['peak_rss_mb']} MB ({worst['file']}), limit {LIMIT_MB} MB; not as expected: {failed or 'none'}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
