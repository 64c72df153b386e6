#!/usr/bin/env bash
# Make sure a Docker engine answers. On a bare Debian/Ubuntu host where we are root, install and start one.
# Reuses a running engine; never starts a second one.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "error: no Docker engine answers and I can only install one as root on Debian/Ubuntu." >&2
    echo "fix: install Docker (https://docs.docker.com/engine/install/) and start it, then re-run." >&2
    exit 1
  fi
  echo "==> installing the Docker engine (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    docker.io containerd runc iptables docker-compose docker-registry debootstrap >/dev/null
fi

echo "==> starting dockerd"
nohup dockerd >/var/log/dockerd.log 2>&1 &
for _ in $(seq 1 120); do
  if docker info >/dev/null 2>&1; then
    exit 0
  fi
  sleep 0.5
done
echo "error: dockerd did not answer within 60 s; see /var/log/dockerd.log" >&2
tail -n 20 /var/log/dockerd.log >&2 || true
exit 1
