"""Fixtures of the store tests: a fresh store in the test's own LIGHTBOX_HOME."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from viewer.store import Store


@pytest.fixture
def store() -> Iterator[Store]:
    with Store.open() as opened:
        yield opened
