"""Shared fixtures: every program test gets a clean Pulumi runtime, set up and torn down here."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.program import ProgramRun, reset_runtime, run_program


@pytest.fixture
def program() -> Iterator[Callable[..., ProgramRun]]:
    """Run the real __main__.py under mocks; the runtime is reset before and after."""
    reset_runtime()

    def run(*args: Any, **kwargs: Any) -> ProgramRun:
        return run_program(*args, **kwargs)

    yield run
    reset_runtime()
