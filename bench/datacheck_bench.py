"""How long the data check before training takes: N samples (image, normal map, mask) of SIZE x SIZE.

    python -m bench.datacheck_bench --count 2000 --size 512

Prints samples/s of the header-only check next to a full decode of the same files, for scale.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from model.normals.check import check_samples
from model.normals.data import index_channel, load_sample
from model.normals.synthetic import write_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "train"
        write_dataset(root, count=1, size=args.size)
        for sub in ("images", "normals", "masks"):
            one = root / sub / "scene_00000.png"
            for i in range(1, args.count):
                shutil.copyfile(one, root / sub / f"copy_{i:06d}.png")
        samples = index_channel(root)
        start = time.perf_counter()
        problems = check_samples(samples)
        check_s = time.perf_counter() - start
        start = time.perf_counter()
        decoded = min(len(samples), 200)
        for sample in samples[:decoded]:
            load_sample(sample)
        decode_s = (time.perf_counter() - start) * len(samples) / decoded
    print(f"{len(samples)} samples of {args.size}x{args.size}: data check {check_s:.2f} s "
          f"({len(samples) / check_s:.0f} samples/s, {len(problems)} problems); "
          f"full decode would take ~{decode_s:.1f} s ({len(samples) / decode_s:.0f} samples/s)")


if __name__ == "__main__":
    main()
