#!/usr/bin/env bash
# From a bare Debian/Ubuntu machine (root, Python only) to a trained model, in one command:
# Docker engine, base image (offline if no registry answers), wheelhouse, the CPU image, a synthetic
# dataset in ./ml (a SageMaker-style /opt/ml tree), `docker run ... train`, the result, then
# `docker run ... serve` and one prediction saved as a PNG normal map.
#
#   bash container/scripts/quickstart.sh            # IMAGE=byoc:latest ML_DIR=./ml MINUTES=3
set -euo pipefail
cd "$(dirname "$0")/../.."
image=${IMAGE:-byoc:latest}
ml=$(realpath -m "${ML_DIR:-ml}")
minutes=${MINUTES:-3}

bash container/scripts/ensure-docker.sh
# A host-side wheelhouse makes the build independent of PyPI access from inside containers; it
# needs the image's Python minor version (3.11) on the host. Without it the build uses PyPI.
if python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  bash container/scripts/make-wheelhouse.sh python3
fi
bash container/scripts/build-image.sh "$image"

echo "==> synthetic dataset and SageMaker config in $ml"
rm -rf "$ml"
mkdir -p "$ml/input/config" "$ml/input/data" "$ml/model" "$ml/output/data"
docker run --rm -v "$ml:/opt/ml" "$image" python -m model.normals.synthetic /opt/ml/input/data/train \
  --count 256 --size 128 --seed 1
docker run --rm -v "$ml:/opt/ml" "$image" python -m model.normals.synthetic /opt/ml/input/data/validation \
  --count 32 --size 128 --seed 2
cat >"$ml/input/config/hyperparameters.json" <<JSON
{"image_size": "64", "max_minutes": "$minutes"}
JSON
echo '{"train": {"TrainingInputMode": "File"}, "validation": {"TrainingInputMode": "File"}}' \
  >"$ml/input/config/inputdataconfig.json"
echo '{"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}' \
  >"$ml/input/config/resourceconfig.json"

echo "==> docker run $image train"
docker run --rm --network none -v "$ml:/opt/ml" "$image" train

echo "==> result"
ls -l "$ml/model"
docker run --rm -v "$ml:/opt/ml" "$image" python -c '
import json
r = json.load(open("/opt/ml/output/data/metrics.json"))
m, b = r["final_metrics"], r["constant_baseline"]
print("%d epochs; validation mean angular error %.1f deg, median %.1f deg, within 11.25 deg %.0f%%" % (
    r["epochs"], m["validation:mean_angular_error"], m["validation:median_angular_error"],
    100 * m["validation:within_11.25deg"]))
print("constant \"facing the camera\" answer: mean %.1f deg, within 11.25 deg %.0f%%" % (
    b["mean_angular_error"], 100 * b["within_11.25deg"]))'
echo "panels (input | truth | prediction): $ml/output/data/panel_*.png; curve: $ml/output/data/training_curve.png"

echo "==> docker run -p 8080:8080 $image serve, then POST a validation image to /invocations"
port=${PORT:-8080}
cid=$(docker run -d --rm -p "127.0.0.1:$port:8080" -v "$ml/model:/opt/ml/model:ro" "$image" serve)
trap 'docker stop -t 30 "$cid" >/dev/null 2>&1 || true' EXIT
for _ in $(seq 1 120); do
  if curl -fs "http://127.0.0.1:$port/ping" >/dev/null; then break; fi
  sleep 0.5
done
curl -fs "http://127.0.0.1:$port/ping" >/dev/null || { docker logs "$cid"; echo "error: /ping never answered 200" >&2; exit 1; }
sample=$(ls "$ml/input/data/validation/images/" | head -n 1)
curl -fsS --data-binary "@$ml/input/data/validation/images/$sample" -H 'Content-Type: image/png' \
  -H 'Accept: image/png' "http://127.0.0.1:$port/invocations" -o "$ml/normals.png"
echo "==> predicted normal map of $sample: $ml/normals.png (input: $ml/input/data/validation/images/$sample)"
