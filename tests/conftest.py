"""Shared test settings: hypothesis runs fewer examples in CI (CI=true), never none; optional
backends are required in CI (:func:`require`)."""

import importlib
import os
from types import ModuleType

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def require(module: str) -> ModuleType:
    """Import an optional backend (``torch``, ``jax``, ``dask.array``) for a test.

    Where it is not installed the test is skipped, except in CI (``CI`` set, as ``.ci/run`` does,
    which installs them): there a missing backend fails the test, so its tests cannot silently
    stop running. ``torch = require("torch")``
    """
    if not os.environ.get("CI"):
        return pytest.importorskip(module)
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(f"{module} is required when CI is set (.ci/run installs it): {exc}")
