#!/usr/bin/env bash
# The GPU figures in one short run, on a CUDA host without Docker (python3 with torch; flask, pillow, numpy,
# prometheus_client and pypng installed):
#
#   bash bench/gpu_run.sh DATA_DIR OUT_DIR
#
# DATA_DIR holds `train/` and `validation/` in the README's dataset format. In order: train_bench (our loop,
# bare loop, ceiling, GPU busy share) at batch 16 and 64; the default job (hyperparameters {}) and a budgeted
# job (MINUTES, default 1.5, with no epoch cap) through `python -m train`; then batching_bench on the budgeted
# job's model (unbatched vs dynamic batching at concurrency 16). nvidia-smi samples utilisation all along
# (OUT_DIR/smi.csv, with each phase's start in OUT_DIR/phases.txt). Each step has its own time limit so one
# failure leaves the others' figures; SCALE=0.1 shrinks everything for a dry run on a CPU.
set -u
data=$1 out=$2 scale=${SCALE:-1} minutes=${MINUTES:-1.5}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
n() { python3 -c "import sys; print(max(1, round(float(sys.argv[1]) * $scale)))" "$1"; }
phase() { echo "PHASE $1 $(date '+%Y/%m/%d %H:%M:%S.%N')" | tee -a "$out/phases.txt"; }

nvidia-smi -L 2>/dev/null
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 500 \
    >"$out/smi.csv" 2>/dev/null &
fi

phase train_bench16
timeout "$(n 120)" python3 -m bench.train_bench --samples "$(n 256)" --size 128 --batch 16 --rounds 3 \
  --epochs 3 --ceiling-steps "$(n 60)" 2>&1 | tee "$out/train_bench16.txt"
phase train_bench64
timeout "$(n 50)" python3 -m bench.train_bench --samples "$(n 256)" --size 128 --batch 64 --rounds 1 \
  --epochs 3 --ceiling-steps "$(n 30)" 2>&1 | tee "$out/train_bench64.txt"

job() {  # name, then extra arguments for python -m train
  local name=$1; shift
  phase "job_$name"
  local start=$SECONDS
  timeout "$(n 150)" python3 -m train --channel "train=$data/train" --channel "validation=$data/validation" \
    --model-dir "$out/model_$name" --output-dir "$out/output_$name" "$@" >"$out/job_$name.log" 2>&1
  echo "job $name: exit $? after $((SECONDS - start)) s"
  grep -E "precision|images/s|epochs|Final|final" "$out/job_$name.log" | tail -5
  cat "$out/output_$name/metrics.json" 2>/dev/null; echo
}
job default
job budget --hp "max_minutes=$(python3 -c "print($minutes * $scale)")" --hp epochs=100000

phase batching
model="$out/model_budget"; [ -f "$model/model.pt" ] || model=  # else an untrained U-Net of the default width
timeout "$(n 110)" python3 -m bench.batching_bench ${model:+--model-dir "$model"} --size 256 --concurrency 16 \
  --seconds "$(n 6)" --rounds 3 --batch 1 --batch 8 --batch 16 2>&1 | tee "$out/batching.txt"
phase end
kill %1 2>/dev/null
exit 0
