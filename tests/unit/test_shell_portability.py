"""build_and_push.sh runs on macOS's stock bash 3.2, where `set -u` makes "${arr[@]}" of an empty array an
"unbound variable" error (bash >= 4.4 allows it, so running the script here cannot show the bug; this
check reads the script instead). Every expansion of an array that is ever empty must use the guard
${arr[@]+"${arr[@]}"}, which expands to nothing when the array is empty."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
USER_SCRIPTS = [REPO / "build_and_push.sh"]  # run on users' machines (macOS included), not only in the image


def unguarded_empty_array_expansions(text: str) -> list[str]:
    maybe_empty = set(re.findall(r"^\s*(?:local\s+)?(\w+)=\(\s*\)", text, flags=re.M))
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for name in maybe_empty:
            guarded = line.count(f'${{{name}[@]+"${{{name}[@]}}"}}')
            if line.count(f"${{{name}[@]}}") + line.count(f"${{{name}[*]}}") > guarded:
                found.append(f"line {number}: {line.strip()}")
    return found


def test_the_check_finds_the_pattern_and_accepts_the_guard():
    bad = 'opts=()\nrun "${opts[@]}" x\n'
    good = 'opts=()\nrun ${opts[@]+"${opts[@]}"} x\nfull=(a)\nrun "${full[@]}"\n'
    assert unguarded_empty_array_expansions(bad) == ['line 2: run "${opts[@]}" x']
    assert unguarded_empty_array_expansions(good) == []


def test_user_scripts_never_expand_a_possibly_empty_array_unguarded():
    for script in USER_SCRIPTS:
        assert unguarded_empty_array_expansions(script.read_text()) == [], script.name
