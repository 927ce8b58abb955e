"""Every way a PACS can fail, as one `PacsError` whose message names the server and the step, never credentials.

The messages are built here from the kind of failure, the server's scheme/host/path and the HTTP status: never
from the exception's own text, which may repeat a request URL with its query (patient ids) or a header.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from core.errors import PacsError
from core.pacs.connection import PacsConnection

STATUS_MEANING = {
    400: "refused the request as malformed",
    401: "refused the credentials (HTTP 401): check BRAINSCAN_PACS_USER / BRAINSCAN_PACS_PASSWORD or "
         "BRAINSCAN_PACS_TOKEN",
    403: "refused access (HTTP 403): the account may not do this",
    404: "does not hold it (HTTP 404)",
    409: "refused to store it (HTTP 409 conflict)",
    413: "refused it as too large (HTTP 413)",
}


def _status_text(status: int | None) -> str:
    if status in STATUS_MEANING:
        return STATUS_MEANING[status]
    if status is not None and status >= 500:
        return f"failed on its side (HTTP {status}); try again later"
    return f"answered HTTP {status}"


@contextlib.contextmanager
def pacs_errors(connection: PacsConnection, step: str) -> Iterator[None]:
    """Run one PACS step; any transport, HTTP or parsing failure becomes a PacsError naming `step`."""
    import requests
    from pydicom.errors import InvalidDicomError

    where = f"the PACS at {connection.describe} ({step})"
    try:
        yield
    except PacsError:
        raise
    except requests.exceptions.SSLError as exc:
        raise PacsError(f"{where}: the TLS certificate could not be verified") from _quiet(exc)
    except requests.exceptions.InvalidJSONError as exc:
        raise PacsError(f"{where} answered something that is not valid DICOMweb (not JSON)") from _quiet(exc)
    except requests.exceptions.Timeout as exc:
        raise PacsError(f"{where} did not answer within {connection.timeout_s:g} s") from _quiet(exc)
    except requests.exceptions.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        raise PacsError(f"{where} {_status_text(status)}") from _quiet(exc)
    except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
        raise PacsError(f"{where}: the connection failed or was cut (after {connection.retries} retries); "
                        "is the server running?") from _quiet(exc)
    except requests.exceptions.RequestException as exc:
        raise PacsError(f"{where}: the request failed ({type(exc).__name__})") from _quiet(exc)
    except (ValueError, KeyError, InvalidDicomError) as exc:  # bad JSON, missing attributes, bad DICOM
        raise PacsError(f"{where} answered something that is not valid DICOMweb ({type(exc).__name__})") \
            from _quiet(exc)


def _quiet(exc: BaseException) -> Any:
    """The cause kept for debugging with its arguments dropped: they can hold URLs with queries or headers."""
    exc.args = ()
    return exc
