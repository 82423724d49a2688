"""Shared test helpers: the fixtures folder and small builds."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.fixture
def shared_fixtures() -> Path:
    path = SHARED / "fixtures"
    if not path.exists():
        pytest.skip("../shared/fixtures is not beside this checkout")
    return path
