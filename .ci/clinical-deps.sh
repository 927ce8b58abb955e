#!/usr/bin/env bash
# What the clinical-workflow tests need from Debian: PostgreSQL's server binaries (tests/postgres_server.py
# starts a throwaway cluster with initdb/pg_ctl as the `postgres` user, since initdb refuses root) and
# poppler-utils (pdftoppm renders the case report). Nothing is started here.
set -euo pipefail
if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  pg=1
else
  pg=0
fi
if [ "$pg" = 1 ] && command -v pdftoppm >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends postgresql poppler-utils fonts-dejavu-core
