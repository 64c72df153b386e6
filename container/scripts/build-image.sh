#!/usr/bin/env bash
# Build the image from this checkout, offline-capable. Usage: build-image.sh [TAG] [extra docker build args...]
# BASE_IMAGE (env) overrides the base; by default the public python:3.11-slim-bookworm is used when it
# is present or pullable, else an offline base is made with debootstrap (make-base-image.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
tag=${1:-byoc:latest}
shift || true
public=python:3.11-slim-bookworm
if [[ -z ${BASE_IMAGE:-} ]]; then
  if docker image inspect "$public" >/dev/null 2>&1 || timeout 60 docker pull -q "$public" >/dev/null 2>&1; then
    BASE_IMAGE=$public
  else
    echo "==> no registry answers; using an offline base image"
    bash container/scripts/make-base-image.sh byoc-base:bookworm
    BASE_IMAGE=byoc-base:bookworm
  fi
fi
echo "==> docker build -t $tag (base $BASE_IMAGE)"
docker build --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$tag" "$@" .
docker image inspect "$tag" --format '==> image {{.RepoTags}}: {{.Size}} bytes'
