"""Access-log lines reach stdout as bare JSON (what CloudWatch Logs metric filters need); others keep a prefix."""

from __future__ import annotations

import json
import logging
import os

import pytest

from container.serving import configure_logging


@pytest.fixture
def restore_root_logging():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_access_lines_are_whole_json_documents_and_other_lines_are_prefixed(capsys, restore_root_logging):
    configure_logging("info")
    logging.getLogger("serve.access").info(json.dumps({"path": "/invocations", "latency_ms": 12.5}))
    logging.getLogger("serve").info("worker ready")
    access, other = capsys.readouterr().out.splitlines()
    assert json.loads(access) == {"path": "/invocations", "latency_ms": 12.5}
    assert other.endswith(f"INFO [{os.getpid()}] serve: worker ready")
