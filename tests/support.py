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
