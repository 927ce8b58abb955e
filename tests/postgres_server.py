"""A throwaway PostgreSQL cluster for tests: initdb + pg_ctl in a temporary folder, on a free local port.

Uses BRAINSCAN_TEST_PG_URL when set (a running server). Otherwise it needs Debian's `postgresql` binaries; as
root (CI) the cluster runs as the `postgres` user, because initdb refuses root. `start` returns (url, stop) or
raises RuntimeError with the reason, which the fixture turns into a skip.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start() -> tuple[str, Callable[[], None]]:
    """Start a cluster; (SQLAlchemy URL, stop function)."""
    url = os.environ.get("BRAINSCAN_TEST_PG_URL")
    if url:
        return url, lambda: None
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError("PostgreSQL is not installed (no initdb/pg_ctl; Debian: apt-get install postgresql)")
    prefix: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="brainscan-pg-"))
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError as exc:
            raise RuntimeError("running as root and there is no `postgres` user to run initdb as") from exc
        if not runuser:
            raise RuntimeError("running as root and `runuser` is missing (initdb refuses root)")
        prefix = [runuser, "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
        folder.chmod(0o700)
    data, log = folder / "data", folder / "server.log"
    port = _free_port()
    init = subprocess.run([*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
                          capture_output=True, text=True, timeout=120)
    if init.returncode:
        raise RuntimeError(f"initdb failed: {(init.stderr or init.stdout).strip().splitlines()[-1:]}")
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {folder} -c fsync=off"
    started = subprocess.run([*prefix, pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60",
                              "start"], capture_output=True, text=True, timeout=90)
    if started.returncode:
        tail = log.read_text()[-500:] if log.exists() else started.stderr
        raise RuntimeError(f"pg_ctl start failed: {tail.strip()}")

    def stop() -> None:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True,
                       timeout=60)
        shutil.rmtree(folder, ignore_errors=True)

    time.sleep(0.2)
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", stop
