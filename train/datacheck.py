"""Data problems as user errors: the check before the first step, and problems found mid-training.

Before training, the model family checks every file of every split (headers, not pixels) and the job
fails listing the first problems at once, before any training time is spent. A problem that only shows
while decoding (damage inside the compressed pixels) still fails the job as a UserError naming the file,
also when it happens in a DataLoader worker process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader

from model.family import DataFormatError, ModelFamily
from train.errors import UserError, message_from_worker

log = logging.getLogger(__name__)
SHOWN = 5
FIX = ("correct or remove the files named (every file of every channel was checked: the count is complete); "
       "the README's 'Dataset format' section says what each file must be")


def check_splits(family: ModelFamily, *splits: Any) -> None:
    """Raise one UserError listing the first problems of all samples in ``splits`` (lists of samples)."""
    start = time.perf_counter()
    samples = [s for split in splits for s in split]
    problems = family.check_data(samples) if family.spec.has("check_data") else []
    log.info("data check: %d samples in %.1f s, %d problem(s)", len(samples), time.perf_counter() - start,
             len(problems))
    if not problems:
        return
    shown = "; ".join(problems[:SHOWN])
    more = f"; and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
    raise UserError(f"{len(problems)} data problem(s) found before training: {shown}{more}", FIX)


def as_user_error(exc: Exception) -> UserError:
    """A data problem raised while loading a sample (here or in a loader worker) as a UserError."""
    text = message_from_worker(exc)
    if isinstance(exc, UserError) and exc.fix:
        return exc
    if isinstance(exc, UserError):
        return UserError(text)
    return UserError(f"a training sample cannot be used: {text}",
                     "correct or remove this sample's files (the check before training reads only headers, so "
                     "damage inside the compressed pixels shows only when the sample is decoded)")


class UserFacingLoader(DataLoader):
    """A DataLoader whose data problems surface as UserErrors naming the file, from any worker process."""

    def __iter__(self) -> Iterator[Any]:
        batches = super().__iter__()
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except (DataFormatError, UserError) as exc:
                raise as_user_error(exc) from None
            yield batch
