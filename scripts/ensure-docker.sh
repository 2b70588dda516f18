#!/bin/bash
# Make sure a Docker engine answers: start dockerd in the background when none runs, then poll
# `docker info` until it answers or the deadline passes (no bare sleeps as synchronisation).
set -euo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
command -v dockerd >/dev/null || { echo "ensure-docker: dockerd is not installed (apt-get install docker.io)" >&2; exit 1; }
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! pgrep -x dockerd >/dev/null; then
    echo "starting dockerd (log: /var/log/dbtls-dockerd.log)"
    $SUDO bash -c 'nohup dockerd >/var/log/dbtls-dockerd.log 2>&1 &'
fi
deadline=$(( $(date +%s) + 90 ))
until docker info >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "ensure-docker: the Docker engine did not answer within 90 s; see /var/log/dbtls-dockerd.log" >&2
        tail -n 20 /var/log/dbtls-dockerd.log >&2 || true
        exit 1
    fi
    sleep 0.5
done
echo "docker engine is up"
