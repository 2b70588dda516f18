"""Make the generator package importable without installing it (the venv has no editable install)."""

import sys
from pathlib import Path

_GENERATOR = Path(__file__).resolve().parents[3] / "generator"
if str(_GENERATOR) not in sys.path:
    sys.path.insert(0, str(_GENERATOR))
