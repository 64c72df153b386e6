#!/usr/bin/env bash
# Where the default recipe's accuracy stops growing, measured on one GPU host (python3 with torch, numpy,
# Pillow and pypng; no Docker), in one short run:
#
#   bash bench/gpu_scaling.sh DATA_DIR WORK_DIR [OUT_DIR]
#
# DATA_DIR holds `train/` and `validation/` (the README's dataset format; here the 256 + 64 `heldout` scenes of
# 128 px that the quality benchmark writes). First, serving: one worker's batcher in process at concurrency 16
# (batch 8, the GPU default) alone, then two such workers side by side on the same GPU (what a second worker per
# GPU would give). Then training, in parallel: the default recipe for 100 (the cap until then), 200 and 300
# epochs with no time budget, and wider U-Nets (base 24 and 32) for 200 epochs, each pinned to 2 cores so that they do not
# contend for the CPU; beside them, on 4 cores, the default job with data_workers=0 and then 3 (forked workers
# preparing batches from the decoded scenes). A 2-core CPU trains ~40-100 epochs in the default job's ~9-minute
# budget (AVX2 float32 to AVX512-BF16), so the epoch counts say what more CPU time or a faster recipe would buy. nvidia-smi samples utilisation throughout.
set -u
data=$1 out=$2 keep=${3:-}  # KEEP gets the logs in one file, the samples and the 100- and 200-epoch models
mkdir -p "$out"
export PYTHONUNBUFFERED=1
phase() { echo "PHASE $1 $(date '+%H:%M:%S')" | tee -a "$out/phases.txt"; }
nvidia-smi -L
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 500 \
  >"$out/smi.csv" 2>/dev/null &
smi=$!

phase serve_one
timeout 60 python3 -m bench.batching_bench --size 256 --concurrency 16 --seconds 6 --rounds 2 --batch 1 --batch 8 \
  2>&1 | tee "$out/serve_one.txt"
phase serve_two
pids=()
for i in 1 2; do
  timeout 60 python3 -m bench.batching_bench --size 256 --concurrency 16 --seconds 6 --rounds 2 --batch 8 \
    >"$out/serve_two_$i.txt" 2>&1 &
  pids+=($!)
done
wait "${pids[@]}"
cat "$out"/serve_two_*.txt

cat >"$out/summary.py" <<'PY'
import json, statistics, sys
m = json.load(open(sys.argv[1])); f = m["final_metrics"]; h = m["history"]
print(f"{m['epochs']} epochs, {statistics.median(e['train:images_per_second'] for e in h):.0f} images/s, "
      f"{h[-1]['elapsed_seconds']:.0f} s: {f['validation:mean_angular_error']:.2f} deg mean, "
      f"{f['validation:median_angular_error']:.2f} median, {100 * f['validation:within_11.25deg']:.1f}% < 11.25; "
      "every 10th epoch: " + " ".join(f"{e['validation:mean_angular_error']:.1f}" for e in h[9::10]))
PY
quiet=(--hp checkpoint_steps=0 --hp keep_checkpoints=1 --hp panels=0 --hp log_every_steps=1000000)
job() {  # name, cores, then hyperparameters
  local name=$1 cores=$2; shift 2
  local hps=() start=$SECONDS
  for kv in "$@"; do hps+=(--hp "$kv"); done
  taskset -c "$cores" timeout 420 python3 -m train --channel "train=$data/train" \
    --channel "validation=$data/validation" --model-dir "$out/m_$name" --output-dir "$out/o_$name" \
    "${quiet[@]}" "${hps[@]}" >"$out/job_$name.log" 2>&1
  echo "JOB $name exit $? after $((SECONDS - start)) s: $(python3 "$out/summary.py" "$out/o_$name/metrics.json" 2>&1)" \
    | tee -a "$out/jobs.txt"
}
phase train
pids=()
job e100 0,1 epochs=100 max_minutes=0 & pids+=($!)
job e200 2,3 epochs=200 max_minutes=0 & pids+=($!)
job e300 4,5 epochs=300 max_minutes=0 & pids+=($!)
job b24e200 6,7 base_channels=24 epochs=200 max_minutes=0 & pids+=($!)
job b32e200 8,9 base_channels=32 epochs=200 max_minutes=0 & pids+=($!)
(job dw0 10-13 epochs=100 max_minutes=0 data_workers=0; job dw3 10-13 epochs=100 max_minutes=0 data_workers=3) &
pids+=($!)
wait "${pids[@]}"
phase end
kill "$smi" 2>/dev/null
if [ -n "$keep" ]; then
  mkdir -p "$keep"
  for f in "$out"/*.txt "$out"/*.log; do echo "=== $f"; cat "$f"; done >"$keep/all.log"
  cp "$out/smi.csv" "$out/jobs.txt" "$keep/" 2>/dev/null
  tar -C "$out" -cf "$keep/models.tar" m_e100 m_e200 2>/dev/null
fi
exit 0
