"""Where the PACS is and how to log in: a `PacsConnection` from the settings, and the DICOMweb client it opens.

Credentials (a bearer token, or a user and password for basic auth) travel in the session's headers only, never
in the URL; a URL that carries a user or a password is refused. `describe` is the one text messages use for the
server (scheme, host, port and path). TLS certificates are verified unless the settings switch it off.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from core.errors import PacsError

DEFAULT_TIMEOUT_S = 20.0
DEFAULT_RETRIES = 3
DEFAULT_MAX_INSTANCES = 2000
DEFAULT_MAX_BYTES = 2 * 1024**3
BACKOFF_S = 0.5  # first wait between attempts; doubles each time


@dataclass(frozen=True)
class PacsConnection:
    """A DICOMweb endpoint, its credentials (never shown: `repr=False`) and the transfer limits."""

    url: str
    token: str | None = field(default=None, repr=False)
    user: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    verify_tls: bool = True
    timeout_s: float = DEFAULT_TIMEOUT_S
    retries: int = DEFAULT_RETRIES
    max_instances: int = DEFAULT_MAX_INSTANCES
    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PacsError("the PACS URL must start with http:// or https:// and name a host "
                            "(e.g. http://127.0.0.1:8042/dicom-web)")
        if parts.username or parts.password:
            raise PacsError("the PACS URL must not hold a user or password: set BRAINSCAN_PACS_USER and "
                            "BRAINSCAN_PACS_PASSWORD (or BRAINSCAN_PACS_TOKEN) instead")
        if parts.query or parts.fragment:
            raise PacsError("the PACS URL must not hold a query or fragment (tokens go in BRAINSCAN_PACS_TOKEN)")
        if self.token and (self.user or self.password):
            raise PacsError("set either a PACS token or a PACS user and password, not both")
        if bool(self.user) != bool(self.password):
            raise PacsError("a PACS user needs a password (and a password a user)")
        if self.timeout_s <= 0 or self.retries < 0 or self.max_instances < 1 or self.max_bytes < 1:
            raise PacsError("PACS time-out, retry count and limits must be positive")

    @property
    def describe(self) -> str:
        """The server as messages name it: scheme://host[:port]/path, nothing else."""
        parts = urlsplit(self.url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}{parts.path.rstrip('/')}"

    @property
    def authenticated(self) -> bool:
        return bool(self.token or self.user)


def from_settings(values: Any) -> PacsConnection | None:
    """The connection the settings describe (`core.settings.Settings`), or None when no PACS URL is set."""
    if not values.pacs_url:
        return None
    return PacsConnection(values.pacs_url, values.pacs_token, values.pacs_user, values.pacs_password,
                          values.pacs_verify_tls, values.pacs_timeout_s, values.pacs_retries,
                          values.pacs_max_instances, values.pacs_max_bytes)


def open_client(connection: PacsConnection) -> Any:
    """A `DICOMwebClient` with the credentials in the session, time-outs on every request, retries with
    exponential back-off on refused connections and on 408/429/503/504 answers."""
    import requests
    from dicomweb_client.api import DICOMwebClient
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    session.verify = connection.verify_tls
    session.trust_env = False  # no proxy or .netrc credentials from the environment
    if connection.user:
        session.auth = (connection.user, connection.password or "")
    if connection.token:
        session.headers["Authorization"] = f"Bearer {connection.token}"
    # a read that timed out is not retried (the server may be working on it): it is reported as a time-out
    retry = Retry(total=connection.retries, connect=connection.retries, read=False, status=0, other=0,
                  backoff_factor=BACKOFF_S, raise_on_status=False)
    for prefix in ("http://", "https://"):
        session.mount(prefix, HTTPAdapter(max_retries=retry))
    client = DICOMwebClient(connection.url.rstrip("/"), session=session, timeout=connection.timeout_s)
    client.set_http_retry_params(retry=connection.retries > 0, max_attempts=connection.retries + 1,
                                 wait_exponential_multiplier=int(BACKOFF_S * 1000))
    return client
