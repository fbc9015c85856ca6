"""Shared fixtures: floating-point errors raise, and a seeded random generator."""
import numpy as np
import pytest


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
