"""The PACS round trip against a real Orthanc (DICOMweb plugin), and every failure the client must survive.

Search -> retrieve -> classify (the upload's series path, the bundled model) -> send (SR, Secondary Capture, PDF)
-> search again and read the results back; `dciodvfy` validates the SR and the SC. The CT series is refused by the
gate; an oversized series is refused before any pixel moves; a server stopped mid-retrieve, wrong credentials, a
silent or garbage-speaking server each give one PacsError without credentials. Skipped with the reason when
Orthanc or the real scans are absent (`.ci/pacs-deps.sh` installs Orthanc).
"""
from __future__ import annotations

import http.server
import json
import logging
import shutil
import subprocess
import threading
import time

import pytest

from core.errors import PacsError
from core.pacs.connection import PacsConnection
from core.pacs.query import list_series, search_studies
from core.pacs.transfer import retrieve_series
from tests.conftest import REAL_DATA
from tests.orthanc_server import (
    ACCESSION,
    MISSING,
    PASSWORD,
    PATIENT_ID,
    STUDY_DATE,
    USER,
    kaggle_series,
    orthanc,
    seed_study,
)

pytestmark = [pytest.mark.data,
              pytest.mark.skipif(MISSING is not None, reason=MISSING or ""),
              pytest.mark.skipif(not (REAL_DATA / "Testing").is_dir(), reason=f"real data not found at {REAL_DATA}")]
CASE_ID = "PACS-ROUND-TRIP"


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    """Orthanc seeded with a 24-slice MR series of real glioma scans and a 3-slice CT series."""
    with orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        seed_study(server, kaggle_series(REAL_DATA))
        yield server


@pytest.fixture(scope="module")
def bundled():
    from core.model.factory import default_model_dir, load_model

    folder = default_model_dir()
    return (folder, *load_model(folder))


def _series(connection, pacs, uid):
    return next(s for s in list_series(connection, pacs.study_uid) if s.series_uid == uid)


def test_search_by_each_criterion_and_the_series_table(pacs):
    connection = PacsConnection(pacs.url)
    for criteria in ({"patient_id": PATIENT_ID}, {"accession": ACCESSION}, {"study_uid": pacs.study_uid},
                     {"date_from": STUDY_DATE, "date_to": STUDY_DATE}, {"date_from": "2026-11-01"}):
        studies = search_studies(connection, **criteria)
        assert [s.study_uid for s in studies] == [pacs.study_uid], criteria
    assert search_studies(connection, patient_id="NOBODY") == []
    assert studies[0].modalities == ("CT", "MR") and studies[0].instance_count == 27
    table = {s.modality: s for s in list_series(connection, pacs.study_uid)}
    assert (table["MR"].instance_count, table["MR"].plane, table["MR"].description) == (24, "axial", "AX T1 POST GD")
    assert (table["CT"].instance_count, table["CT"].number) == (3, 2)
    with pytest.raises(PacsError, match="search by"):
        search_studies(connection)
    with pytest.raises(PacsError, match="YYYYMMDD"):
        search_studies(connection, date_from="30/11/2026")


def test_round_trip_classify_send_and_read_back(pacs, bundled, tmp_path, monkeypatch):
    from dicomweb_client.api import DICOMwebClient

    from core.io.series import load_series
    from core.model.series_assessment import classify_series
    from core.model.trust import load_trust
    from core.report.dicom_results import read_sr
    from core.report.pacs_case import classify_pacs_series, prepare_results, send_results

    folder, model, card = bundled
    connection = PacsConnection(pacs.url)
    case = classify_pacs_series(connection, model, card, folder, pacs.study_uid)  # the study's only MR series
    assert case.summary.series_uid == pacs.mr_series_uid and len(case.series.slices) == 24
    # the same answers as the same files uploaded
    retrieved = retrieve_series(connection, case.summary)
    upload = load_series(retrieved.files)
    expected = classify_series(model, card, [s.image for s in upload.slices], load_trust(folder, card.class_names),
                               upload.modality)
    assert [a.to_dict() for a in case.result.predictions] == [a.to_dict() for a in expected.predictions]
    assert [int(s.InstanceNumber) for s in case.sources] == list(range(1, 25))  # slice order = position order

    outgoing = prepare_results(case, model, card, folder, CASE_ID)
    lines = outgoing.describe()
    assert len(outgoing.objects.datasets) == len(lines) >= 3
    record = send_results(connection, case, outgoing)
    text = json.dumps(record)
    assert pacs.study_uid not in text and pacs.mr_series_uid not in text and PATIENT_ID not in text
    assert [o["kind"] for o in record["objects"]][0] == "structured report"

    series = {s.modality: s for s in list_series(connection, pacs.study_uid)}
    assert {"SR", "OT", "DOC"} <= set(series)
    client = DICOMwebClient(pacs.url)
    sr = client.retrieve_series(pacs.study_uid, series["SR"].series_uid)[0]
    reading = read_sr(sr)
    assert "not a medical device" in reading.statement.lower()
    assert reading.summary == case.result.summary()
    assert [s.sop_instance_uid for s in reading.slices] == [str(d.SOPInstanceUID) for d in case.sources]
    assert [(s.state, s.headline) for s in reading.slices] == [
        (a.state.value, a.headline) for a in case.result.predictions]
    for got, want in zip(reading.slices, case.result.predictions):
        assert got.probabilities == pytest.approx(want.probabilities, abs=1e-4)
    capture = client.retrieve_series(pacs.study_uid, series["OT"].series_uid)[0]
    assert capture.pixel_array.ndim == 3 and capture.StudyInstanceUID == pacs.study_uid
    document = client.retrieve_series(pacs.study_uid, series["DOC"].series_uid)[0]
    assert bytes(document.EncapsulatedDocument).rstrip(b"\0") == outgoing.pdf.rstrip(b"\0")
    for name, ds in (("sr", sr), ("sc", capture)):
        _validate(ds, tmp_path / f"{name}.dcm")


def _validate(ds, path):
    """`dciodvfy` (dicom3tools) finds no error in the object."""
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed: run .ci/pacs-deps.sh")
    ds.save_as(path, enforce_file_format=True)
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    errors = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]
    assert not errors, "\n".join(errors)


def test_the_ct_series_is_refused_by_the_gate(pacs, bundled):
    from core.report.pacs_case import classify_pacs_series, series_state

    folder, model, card = bundled
    case = classify_pacs_series(PacsConnection(pacs.url), model, card, folder, pacs.study_uid, pacs.ct_series_uid)
    assert series_state(case.result) == "refused" and len(case.result.predictions) == 3
    assert all(a.refused and a.refusal_layer == "metadata" and "CT" in a.refusal for a in case.result.predictions)


def test_cli_classify_json_matches_predict_json(pacs, bundled, monkeypatch, capsys):
    from core.cli import main

    monkeypatch.setenv("BRAINSCAN_PACS_URL", pacs.url)
    assert main(["pacs", "classify", "--study", pacs.study_uid, "--series", pacs.ct_series_uid, "--json",
                 "--model", str(bundled[0])]) == 0
    out = capsys.readouterr()
    rows = [json.loads(line) for line in out.out.splitlines()]
    assert len(rows) == 3 and all(r["state"] == "refused" and r["predicted_class"] is None for r in rows)
    assert set(rows[0]) >= {"file", "schema_version", "model", "state", "headline", "probabilities",
                            "prediction_set", "refusal", "warnings"}
    assert "nothing sent" in out.err
    assert main(["pacs", "search", "--accession", ACCESSION]) == 0
    assert pacs.study_uid in capsys.readouterr().out


def test_oversized_series_is_refused_before_download(pacs, monkeypatch):
    from dicomweb_client.api import DICOMwebClient

    def forbidden(*_args, **_kwargs):
        raise AssertionError("nothing may be downloaded")

    monkeypatch.setattr(DICOMwebClient, "iter_series", forbidden)
    summary = _series(PacsConnection(pacs.url), pacs, pacs.mr_series_uid)
    with pytest.raises(PacsError, match="24 instances; series of 24 or more"):
        retrieve_series(PacsConnection(pacs.url, max_instances=24), summary)
    with pytest.raises(PacsError, match="declares 2 MiB of pixel data"):  # 24 x 224 x 224 x 2 bytes
        retrieve_series(PacsConnection(pacs.url, max_bytes=1024**2), summary)


def test_server_stopped_during_a_retrieve_is_one_clear_error(tmp_path, monkeypatch):
    """Orthanc is killed once the series' metadata has come (before the pixels): one PacsError, and every later call
    fails the same clear way (nothing hangs, nothing crashes)."""
    from dicomweb_client.api import DICOMwebClient

    with orthanc(tmp_path / "orthanc") as server:
        seed_study(server, kaggle_series(REAL_DATA, 2), ct_slices=0)
        connection = PacsConnection(server.url, retries=1, timeout_s=5)
        summary = _series(connection, server, server.mr_series_uid)
        metadata = DICOMwebClient.retrieve_series_metadata

        def then_crash(self, *args, **kwargs):
            answer = metadata(self, *args, **kwargs)
            server.stop()
            return answer

        monkeypatch.setattr(DICOMwebClient, "retrieve_series_metadata", then_crash)
        with pytest.raises(PacsError, match=r"127\.0\.0\.1.*\(retrieve the series\).*is the server running"):
            retrieve_series(connection, summary)
        with pytest.raises(PacsError, match="is the server running"):
            search_studies(connection, patient_id=PATIENT_ID)


def test_a_transfer_cut_short_is_an_error_not_a_short_series(pacs, monkeypatch):
    from dicomweb_client.api import DICOMwebClient

    stream = DICOMwebClient.iter_series
    monkeypatch.setattr(DICOMwebClient, "iter_series",
                        lambda self, *a, **k: (ds for i, ds in enumerate(stream(self, *a, **k)) if i < 3))
    connection = PacsConnection(pacs.url)
    with pytest.raises(PacsError, match="sent 3 of the series' 24 instances"):
        retrieve_series(connection, _series(connection, pacs, pacs.mr_series_uid))


def test_wrong_credentials_are_refused_without_echoing_them(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # dicomweb-client, requests and urllib3 log every request at DEBUG
    with orthanc(tmp_path / "orthanc", users={USER: PASSWORD}) as server:
        assert search_studies(PacsConnection(server.url, user=USER, password=PASSWORD), patient_id="X") == []
        for wrong in (PacsConnection(server.url, user=USER, password="Wr0ng-Secret-42"),
                      PacsConnection(server.url, token="tok-Secret-Token-77"), PacsConnection(server.url)):
            with pytest.raises(PacsError, match="refused the credentials") as raised:
                search_studies(wrong, patient_id=PATIENT_ID)
            message = str(raised.value)
            for secret in (USER, PASSWORD, "Wr0ng-Secret-42", "tok-Secret-Token-77", PATIENT_ID):
                assert secret not in message and secret not in repr(wrong)
    with pytest.raises(PacsError) as raised:
        PacsConnection(f"http://{USER}:{PASSWORD}@127.0.0.1:1/dicom-web")
    assert PASSWORD not in str(raised.value)
    assert "dicom-web" in caplog.text  # the requests were logged ...
    for secret in (PASSWORD, "Wr0ng-Secret-42", "tok-Secret-Token-77"):  # ... without a credential
        assert secret not in caplog.text


class _Odd(http.server.BaseHTTPRequestHandler):
    """Answers every request with `body` after `delay` seconds."""

    body = b"this is not DICOM JSON"
    delay = 0.0

    def do_GET(self):  # noqa: N802 (http.server's name)
        time.sleep(self.delay)
        self.send_response(200)
        self.send_header("Content-Type", "application/dicom+json")
        self.end_headers()
        try:
            self.wfile.write(self.body)
        except BrokenPipeError:  # the client gave up waiting, as it should
            pass

    def log_message(self, *_args):
        pass


@pytest.mark.parametrize("delay, message", [(0.0, "not valid DICOMweb"), (2.0, "did not answer within 0.5 s")])
def test_garbage_or_silent_server_is_one_clear_error(delay, message):
    handler = type("Handler", (_Odd,), {"delay": delay})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/dicom-web"
        with pytest.raises(PacsError, match=message):
            search_studies(PacsConnection(url, timeout_s=0.5, retries=0), patient_id=PATIENT_ID)
    finally:
        httpd.shutdown()
        httpd.server_close()
