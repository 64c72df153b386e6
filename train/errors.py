"""Errors a training run reports to people, split by whose move it is to fix them."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (hyperparameter, data, channel). Message: what, why, how to fix."""

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(f"{what}. Fix: {fix}")
        self.what = what
        self.fix = fix


class TrainingStopped(Exception):
    """SIGTERM arrived (StopTrainingJob, spot interruption, max runtime); a checkpoint was saved."""

    # Read by the sagemaker-training toolkit as the process exit code (128 + SIGTERM).
    errno = 143
