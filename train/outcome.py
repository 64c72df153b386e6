"""The one map from how a training run ended to what people and SageMaker see: a failure line and an exit code.

Every entry point (the container's PID 1, each scale-out process, ``python -m train``) turns its exception
into an :class:`Outcome` here and nowhere else. The line's prefix is the contract the README's *Failures*
table documents: ``UserError:`` (exit 1, no traceback), ``InternalError:`` (exit 1, traceback follows unless
the cause is already explained) and ``Stopped:`` (exit 143, a checkpoint was saved).
"""

from __future__ import annotations

import json
import traceback
from dataclasses import asdict, dataclass

from model.family import DataFormatError
from train.errors import TrainingStopped, UserError

SUCCESS, USER, STOPPED, INTERNAL = "success", "user", "stopped", "internal"
EXIT_CODES = {SUCCESS: 0, USER: 1, INTERNAL: 1, STOPPED: TrainingStopped.errno}
#: Room left for the fix and the start of the traceback within the 1024 characters SageMaker shows.
HEAD_LIMIT = 700
_FIX_SINGLE = (" Fix: this is likely a bug in the image or an environment problem (memory, disk, GPU); "
               "the full traceback is in the job's logs.\n")
_FIX_PROCESS = (" Fix: if a peer host is named, look at that host's log first (it probably failed or was "
                "stopped); otherwise this is likely a bug or an environment problem (memory, disk, GPU).\n")


class ExplainedFailure(RuntimeError):
    """Not the user's doing and not a bug to trace: the message already says what happened and what to do
    (e.g. a peer host never came up)."""

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(f"{what}. Fix: {fix}")


@dataclass(frozen=True)
class Outcome:
    kind: str
    #: The failure file's text ("" on success).
    line: str = ""

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.kind]

    @property
    def failed(self) -> bool:
        return self.kind != SUCCESS

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Outcome:
        return cls(**json.loads(text))


SUCCEEDED = Outcome(SUCCESS)


def stopped(message: str) -> Outcome:
    return Outcome(STOPPED, f"Stopped: {message}")


def outcome_of(exc: BaseException, where: str = "", lost_hosts: tuple[str, ...] = ()) -> Outcome:
    """The outcome of a run that raised ``exc``; call it inside the ``except`` block (it reads the traceback).

    ``where`` ("on host algo-2 (rank 1)") names the process of a scale-out job; ``lost_hosts`` are peers the
    error message points at, named by host.
    """
    if isinstance(exc, (UserError, DataFormatError)):  # a DataFormatError names a file that breaks the format
        return Outcome(USER, f"UserError: {exc} ({where})" if where else f"UserError: {exc}")
    if isinstance(exc, TrainingStopped):
        return stopped(str(exc))
    prefix = f"{where}: " if where else ""
    if isinstance(exc, ExplainedFailure):
        return Outcome(INTERNAL, f"InternalError: {prefix}{exc}")
    lost = f"{where}: lost contact with host {', '.join(lost_hosts)}: " if lost_hosts else prefix
    head = f"InternalError: {lost}{type(exc).__name__}: {exc}"
    return Outcome(INTERNAL, head[:HEAD_LIMIT] + (_FIX_PROCESS if where else _FIX_SINGLE) + traceback.format_exc())
