#!/usr/bin/env bash
# Recipe variations at equal CPU time, measured on one GPU host in minutes (python3 with torch, numpy, Pillow and
# pypng; no Docker):
#
#   bash bench/gpu_recipe_sweep.sh DATA_DIR WORK_DIR [SEEDS]
#
# DATA_DIR holds `train/` and `validation/` (the README's dataset format; the 256 + 64 `heldout` scenes of 128 px
# that the quality benchmark writes). Each variation trains, float32 and without a time budget, the epochs that
# its cost per image on the goal's 2-core CPU allows in the default job's budget: 60 for the default, 60 / cost
# for the others (`python -m bench.recipe_cost` on that CPU measures the cost). Seven jobs run side by side, each
# pinned to 2 cores, every variation with each seed (default 1 2 3); the summary prints the mean error over
# the seeds per variation, best first.
set -u
data=$1 out=$2 seeds=${3:-1 2 3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
variations=(
  "default epochs=60"
  "epochs70 epochs=70"
  "crop80 epochs=87 crop_fraction=0.625"
  "base12 epochs=82 base_channels=12"
  "depth3 epochs=74 depth=3"
  "batch8 epochs=60 batch_size=8"
  "ema995 epochs=60 ema_decay=0.995"
  "wd05 epochs=60 weight_decay=0.05"
  "lr2e-3 epochs=60 learning_rate=0.002"
  "constant epochs=60 lr_schedule=constant"
  "noaug epochs=60 augment=false"
)
cat >"$out/summary.py" <<'PY'
import collections, json, pathlib, statistics, sys
runs = collections.defaultdict(list)
for path in sorted(pathlib.Path(sys.argv[1]).glob("o_*/metrics.json")):
    f = json.loads(path.read_text())["final_metrics"]
    runs[path.parent.name[2:].rsplit("_s", 1)[0]].append(
        (f["validation:mean_angular_error"], 100 * f["validation:within_11.25deg"]))
for name, r in sorted(runs.items(), key=lambda kv: statistics.mean(m for m, _ in kv[1])):
    print(f"{name:10s} seeds {len(r)}: mean {statistics.mean(m for m, _ in r):5.2f} deg "
          f"[{' '.join(f'{m:.2f}' for m, _ in r)}], {statistics.mean(w for _, w in r):.1f}% < 11.25 deg")
PY
jobs=()
for seed in $seeds; do
  for v in "${variations[@]}"; do
    set -- $v
    name=$1; shift
    jobs+=("${name}_s$seed $* seed=$seed")
  done
done
quiet=(--hp checkpoint_steps=0 --hp keep_checkpoints=1 --hp panels=0 --hp log_every_steps=1000000
       --hp max_minutes=0 --hp precision=fp32)
slot() {  # cores, then the jobs of this slot
  local cores=$1; shift
  for spec in "$@"; do
    set -- $spec
    local name=$1 hps=(); shift
    for kv in "$@"; do hps+=(--hp "$kv"); done
    taskset -c "$cores" timeout 300 python3 -m train --channel "train=$data/train" \
      --channel "validation=$data/validation" --model-dir "$out/m_$name" --output-dir "$out/o_$name" \
      "${quiet[@]}" "${hps[@]}" >"$out/job_$name.log" 2>&1 || echo "job $name failed: $(tail -1 "$out/job_$name.log")"
  done
}
pids=()
for ((i = 0; i < 7; i++)); do
  mine=()
  for ((j = i; j < ${#jobs[@]}; j += 7)); do mine+=("${jobs[$j]}"); done
  slot "$((2 * i)),$((2 * i + 1))" "${mine[@]}" &
  pids+=($!)
done
wait "${pids[@]}"
python3 "$out/summary.py" "$out"
