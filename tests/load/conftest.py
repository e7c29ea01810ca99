"""Fixtures for the load tests (their helpers: tests.load.helpers)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import fresh_run_root


@pytest.fixture
def run_root() -> Iterator[Path]:
    root = fresh_run_root()
    yield root
    shutil.rmtree(root, ignore_errors=True)
