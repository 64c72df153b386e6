"""PID 1 of the image: ``train`` | ``serve`` | ``monitor`` | any other command.

SageMaker starts the image as ``docker run IMAGE train`` or ``docker run IMAGE serve``; with no
argument (SageMaker SDK v3 local mode) the image's CMD makes it ``train``. Anything else is executed
as given, so ``docker run IMAGE python -m model.normals.synthetic ...`` works too. ``monitor`` writes a
drift report of captured requests (container/monitor.py; also a SageMaker Processing job).
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> None:
    command, rest = (argv[0], argv[1:]) if argv else ("train", [])
    if command in ("train", "serve"):
        from container.gpucheck import exit_if_driver_too_old

        exit_if_driver_too_old(command)
    if command == "train":
        from container.training import launch

        launch(rest)
    elif command == "serve":
        from container.serving import main as serve

        serve(rest)
    elif command == "monitor":
        from container.monitor import main as monitor

        sys.exit(monitor(rest))
    else:
        os.execvp(command, [command, *rest])


if __name__ == "__main__":
    main(sys.argv[1:])
