"""Shared fixtures: floating-point errors raise, and a seeded random generator."""
import numpy as np
import pytest
from hypothesis import settings

# property-based tests draw the same examples on every machine: CI cannot meet an example that was
# never run here (the seeds of all other randomness are fixed too)
settings.register_profile("balkin", derandomize=True, deadline=None)
settings.load_profile("balkin")


@pytest.fixture(autouse=True)
def _raise_on_floating_point_errors():
    """Every test runs with np.seterr(all='raise'): overflow, invalid and divide errors fail loudly."""
    old = np.seterr(all="raise")
    yield
    np.seterr(**old)


@pytest.fixture
def rng():
    """A seeded generator: tests are reproducible."""
    return np.random.default_rng(12345)
