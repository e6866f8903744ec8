"""Fixtures of the API tests (the pieces are in ``support``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.dispenser_hub.web.support import make_hub

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.dispenser_hub.web.support import Hub


@pytest.fixture
def hub() -> Iterator[Hub]:
    """The API with alice's token on every request."""
    yield from make_hub()
