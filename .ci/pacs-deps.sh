#!/usr/bin/env bash
# What the PACS tests need from Debian: Orthanc with its DICOMweb plugin (tests/orthanc_server.py starts a
# throwaway server on a loopback port), dicom3tools' `dciodvfy` (validates the SR and the Secondary Capture) and
# dcmtk's `dsrdump` (the SR content tree in docs/pacs.md). Nothing is started here.
set -euo pipefail
if [ -x /usr/sbin/Orthanc ] && [ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] \
   && command -v dciodvfy >/dev/null 2>&1 && command -v dsrdump >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends orthanc orthanc-dicomweb dicom3tools dcmtk
# The Debian package starts a system Orthanc on port 8042; the tests start their own, so stop it when it runs.
$SUDO service orthanc stop >/dev/null 2>&1 || true
