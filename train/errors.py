"""Errors a training run reports to people, split by whose move it is to fix them."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (hyperparameter, data, channel). Message: what, why, how to fix.

    It crosses process boundaries intact: pickling rebuilds it from (what, fix), and a DataLoader worker's
    copy, which PyTorch rebuilds from one formatted message, is accepted with ``fix`` empty (see
    :func:`message_from_worker` for getting the original text back).
    """

    def __init__(self, what: str, fix: str = "") -> None:
        super().__init__(f"{what}. Fix: {fix}" if fix else what)
        self.what = what
        self.fix = fix

    def __reduce__(self):
        return type(self), (self.what, self.fix)


def message_from_worker(exc: BaseException) -> str:
    """The original message of an exception a DataLoader worker raised.

    PyTorch re-raises it in the main process as ``type(exc)("Caught X in DataLoader worker process N.\\n
    Original Traceback ...")``; the original ``str(exc)`` is what follows the traceback's last
    ``module.X: `` line. Other exceptions are returned as they are.
    """
    text = str(exc)
    if not (text.startswith("Caught ") and "Original Traceback" in text):
        return text
    cls = type(exc)
    for marker in (f"{cls.__module__}.{cls.__qualname__}: ", f"{cls.__qualname__}: "):
        at = text.rfind("\n" + marker)
        if at >= 0:
            return text[at + 1 + len(marker):].strip()
    return text.strip().splitlines()[-1]


class TrainingStopped(Exception):
    """SIGTERM arrived (StopTrainingJob, spot interruption, max runtime); a checkpoint was saved."""

    # Read by the sagemaker-training toolkit as the process exit code (128 + SIGTERM).
    errno = 143
