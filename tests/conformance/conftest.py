import pytest
from support import Harness


@pytest.fixture
def net():
    """A :class:`support.Harness`; everything it started is stopped afterwards."""
    harness = Harness()
    yield harness
    harness.close()
