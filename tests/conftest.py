"""Suite-wide pytest settings; the strict-mode helper lives in ``support.py``."""

from support import STRICT, require  # noqa: F401  (re-exported for tests that import it from here)
