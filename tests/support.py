"""Helpers shared by the whole suite (import as ``from support import require``).

``DBTLS_STRICT=1`` (set by ``.ci/run``) turns every "environment not available" skip into a
failure, so CI can never go green without the docker and real-server tests having run.
"""

import os

import pytest

STRICT = os.environ.get("DBTLS_STRICT") == "1"


def require(condition: object, reason: str) -> None:
    """Skip when ``condition`` is false, or fail when running strictly (CI)."""
    if condition:
        return
    if STRICT:
        pytest.fail("DBTLS_STRICT=1 and " + reason, pytrace=False)
    pytest.skip(reason)


#: Prefix for every simulated environment a test creates (``DBTLS_TEST_ENV_PREFIX``), so two
#: checkouts can run their docker tests on one engine without sharing an environment.
ENV_PREFIX = os.environ.get("DBTLS_TEST_ENV_PREFIX", "")


def env_name(name: str) -> str:
    """The environment name a test uses for ``name`` (with the checkout's prefix, if any)."""
    return ENV_PREFIX + name
