"""Reading manifests: YAML 1.1 parsing and fetching ``install``/``mixins`` targets.

PyYAML implements YAML 1.1, as the platform's SnakeYAML does, so ``on``/``yes`` become booleans
here exactly as they would there; the validator warns about that separately.
"""

from __future__ import annotations

import posixpath
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .errors import ManifestError

#: ``fetch(reference, base) -> (text, location)``: resolve ``reference`` against ``base`` (a URL,
#: a directory path, or ``None``) and return the manifest text and where it came from.
Fetcher = Callable[[str, str | None], tuple[str, str]]


def parse_manifest(text: str, where: str = "<manifest>") -> dict[str, Any]:
    """Parse JSON or YAML text into a manifest mapping."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: a manifest must be a mapping, got {type(data).__name__}")
    return data


def resolve_reference(reference: str, base: str | None) -> str:
    """Join a relative ``jps``/``mixins`` reference onto a base URL or directory."""
    if urllib.parse.urlsplit(reference).scheme in ("http", "https", "file") or base is None:
        return reference
    if urllib.parse.urlsplit(base).scheme in ("http", "https", "file"):
        return urllib.parse.urljoin(base.rstrip("/") + "/", reference)
    return posixpath.join(base, reference)


def default_fetch(reference: str, base: str | None) -> tuple[str, str]:
    """Fetch from http(s)/file URLs or the local file system; a ``?_r=`` cache-buster is ignored
    for files (upstream appends it to every download)."""
    location = resolve_reference(reference, base)
    parts = urllib.parse.urlsplit(location)
    if parts.scheme in ("http", "https"):
        with urllib.request.urlopen(location, timeout=30) as resp:  # noqa: S310 - caller's URL
            return resp.read().decode("utf-8"), location
    path = Path(urllib.parse.unquote(parts.path) if parts.scheme == "file" else location.split("?")[0])
    if not path.is_file():
        raise ManifestError(f"cannot read {reference!r} (resolved to {path})")
    return path.read_text(encoding="utf-8"), str(path)


def base_of(location: str | None) -> str | None:
    """Where relative references of a manifest loaded from ``location`` resolve to."""
    if location is None:
        return None
    if urllib.parse.urlsplit(location).scheme in ("http", "https", "file"):
        return location.rsplit("/", 1)[0] + "/"
    return str(Path(location).parent)
