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

from dbtls.jps.errors import ManifestError

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
    """Join a relative reference (``jps``, ``mixins``, ``script``, ``onBeforeInit``) onto ``baseUrl``.

    ``base`` may end in a slash or not (basic-configs.md, Relative Links: a declared baseUrl gets
    one added, the import URL's folder has none); a reference starting with ``/`` is still relative
    to the base (upstream writes ``logo: /images/x.svg``).
    """
    if urllib.parse.urlsplit(reference).scheme in ("http", "https", "file") or base is None:
        return reference
    if urllib.parse.urlsplit(base).scheme in ("http", "https", "file"):
        return base.rstrip("/") + "/" + reference.lstrip("/")
    return posixpath.join(base, reference.lstrip("/"))


def is_link(text: str) -> bool:
    """Is a ``script``/``onBeforeInit`` value a link rather than code? (basic-configs.md, Relative
    Links: a linked file's text has no whitespace, semicolons or round brackets.)"""
    return bool(text) and not any(c in text for c in " \t\r\n;()")


def declared_base_url(value: str) -> str:
    """A manifest's own ``baseUrl``: GitHub ``/blob/`` becomes ``/raw/`` and a trailing slash is
    added (basic-configs.md, Relative Links)."""
    value = value.replace("/blob/", "/raw/") if "github.com/" in value else value
    return value if value.endswith("/") else value + "/"


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
    """``${baseUrl}`` of a manifest imported from ``location`` without a declared baseUrl: the
    folder, without a trailing slash (basic-configs.md: ``${baseUrl}/manifest.jps``)."""
    if location is None:
        return None
    if urllib.parse.urlsplit(location).scheme in ("http", "https", "file"):
        return location.split("?", 1)[0].rsplit("/", 1)[0]
    return str(Path(location).parent)
