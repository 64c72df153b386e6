#!/usr/bin/env bash
# Build a Debian bookworm + Python 3.11 base image without any registry (debootstrap + docker import).
# Only needed where `docker pull python:3.11-slim-bookworm` cannot work (air-gapped hosts, these CI machines).
# Usage: make-base-image.sh [IMAGE_TAG]   (default: byoc-base:bookworm)
set -euo pipefail

tag=${1:-byoc-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "==> base image $tag already exists"
  exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "error: debootstrap is missing; fix: apt-get install -y debootstrap" >&2
  exit 1
fi

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
echo "==> debootstrap bookworm into $rootfs (about a minute)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$rootfs" "$mirror" >/dev/null
# Trim what an image never needs; apt lists come back with `apt-get update`.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
tar -C "$rootfs" -c . | docker import \
  -c 'ENV LANG=C.UTF-8' -c 'CMD ["/bin/bash"]' - "$tag" >/dev/null
echo "==> base image $tag ready"
