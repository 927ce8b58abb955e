"""PACS round trip for a 24-slice series against a real Orthanc: search + retrieve + classify + send.

    nice -n 19 python benchmarks/pacs.py [--data DIR] [--slices 24] [--methods scorecam] [--out FILE] [--save-sr FILE]

Starts a throwaway Orthanc (tests/orthanc_server.py) seeded with `--slices` real test scans as one MR series, then
times each step as the app runs it: QIDO search, series table, WADO retrieve, classification (the series path on
the bundled model; reported separately), building the results (explanations, SR, Secondary Captures, PDF;
reported separately too: it is the explanation methods' cost), and STOW send. The target is the PACS overhead,
search + retrieve + send, <= 10 s beyond classification. Prints one JSON object (and writes it with --out).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "brain-tumor-mri"))
    parser.add_argument("--slices", type=int, default=24)
    parser.add_argument("--methods", default="scorecam")
    parser.add_argument("--out", default=None)
    parser.add_argument("--save-sr", default=None, help="also write the SR read back from the PACS here (for dsrdump)")
    args = parser.parse_args()

    from core.model.factory import default_model_dir, load_model
    from core.pacs.connection import PacsConnection, open_client
    from core.pacs.query import find_series, list_series, search_studies
    from core.report.case import parse_methods
    from core.report.pacs_case import classify_pacs_series, prepare_results, send_results
    from tests.orthanc_server import MISSING, PATIENT_ID, kaggle_series, orthanc, seed_study

    if MISSING:
        print(MISSING, file=sys.stderr)
        return 1
    folder = default_model_dir()
    model, card = load_model(folder)
    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, orthanc(Path(tmp)) as server:
        seed_study(server, kaggle_series(Path(args.data), args.slices), ct_slices=0)
        connection = PacsConnection(server.url)
        start, cpu = time.perf_counter(), time.process_time()
        studies = search_studies(connection, patient_id=PATIENT_ID)
        list_series(connection, studies[0].study_uid)
        times["search_and_series_table"] = time.perf_counter() - start
        find_series(connection, server.study_uid)  # warm: the classify step repeats the series lookup
        case = classify_pacs_series(connection, model, card, folder, server.study_uid)
        times["retrieve_incl_series_lookup"] = case.seconds["search_and_retrieve"]
        times["classify"] = case.seconds["classify"]
        outgoing = prepare_results(case, model, card, folder, "BENCH-PACS", parse_methods(args.methods))
        times["build_results"] = outgoing.seconds
        start, send_cpu = time.perf_counter(), time.process_time()
        send_results(connection, case, outgoing)
        times["send"] = time.perf_counter() - start
        times["cpu_all_steps_this_process"] = time.process_time() - cpu
        times["cpu_send_this_process"] = time.process_time() - send_cpu
        if args.save_sr:
            sr = next(s for s in list_series(connection, server.study_uid) if s.modality == "SR")
            open_client(connection).retrieve_series(server.study_uid, sr.series_uid)[0].save_as(
                args.save_sr, enforce_file_format=True)
    overhead = times["search_and_series_table"] + times["retrieve_incl_series_lookup"] + times["send"]
    result = {"slices": len(case.series.slices), "objects_sent": len(outgoing.objects.datasets),
              "methods": args.methods, "seconds": {k: round(v, 2) for k, v in times.items()},
              "pacs_overhead_s": round(overhead, 2), "target_overhead_s": 10.0, "met": overhead <= 10.0,
              "cpu_count": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 1)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
