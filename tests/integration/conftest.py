from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.stack import Stack


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator:
    stacks: list[Stack] = []

    def make(sink: str, name: str = "root", **changes: object) -> Stack:
        stack = Stack(tmp_path / f"{name}-{sink}", sink, dict(changes))
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.kill_all()
