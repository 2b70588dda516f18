"""A byte-for-byte reproducible zipapp of the node agent.

The manifests pin the agent by sha256, so the archive must depend on the source files only: not on
file-system order, mtimes, umask or the zlib build. Entries are therefore sorted, stamped with one
fixed date, given fixed permissions and stored uncompressed (deflate output may differ between zlib
versions, stored bytes never do).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

#: Earliest date a zip header can hold; any fixed value would do.
FIXED_DATE = (1980, 1, 1, 0, 0, 0)
SHEBANG = b"#!/usr/bin/env python3\n"
#: Runs the agent package when the archive itself is executed (``python3 dbtls-agent.pyz ...``).
MAIN = b'"""dbtls-agent zipapp entry point."""\nimport sys\n\nfrom dbtls_agent.cli import main\n\n' \
       b"sys.exit(main())\n"
_SKIP_DIRS = {"__pycache__"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}


@dataclass(frozen=True)
class Zipapp:
    """The archive bytes and their sha256 (what the manifest pins)."""

    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _sources(package_dir: Path) -> list[tuple[str, bytes]]:
    """(archive name, bytes) of every source file of the package, in a stable order."""
    root = package_dir.parent
    files = []
    for path in package_dir.rglob("*"):
        if not path.is_file() or path.suffix in _SKIP_SUFFIXES:
            continue
        if _SKIP_DIRS & set(path.relative_to(root).parts):
            continue
        files.append((path.relative_to(root).as_posix(), path.read_bytes()))
    return sorted(files)


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3  # unix, so external_attr below is read as a mode
    info.external_attr = (0o100644 << 16)
    return info


def build_zipapp(package_dir: Path) -> Zipapp:
    """Archive ``package_dir`` (the ``dbtls_agent`` folder) with a ``__main__.py`` and shebang."""
    if not (package_dir / "__init__.py").is_file():
        raise FileNotFoundError(f"{package_dir} is not a Python package")
    buf = io.BytesIO()
    buf.write(SHEBANG)
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(_entry("__main__.py"), MAIN)
        for name, data in _sources(package_dir):
            archive.writestr(_entry(name), data)
    return Zipapp(buf.getvalue())
