"""Exceptions of the JPS tooling.

One root type (:class:`JpsError`) so callers such as the CLI can catch everything the validator or
the interpreter raises and print it, while tests can still tell the kinds apart.
"""

from __future__ import annotations


class JpsError(Exception):
    """Root of every error raised by :mod:`dbtls.jps`."""


class ManifestError(JpsError):
    """The manifest is malformed in a way that makes it impossible to go on (bad YAML, bad key)."""


class UnsupportedFeature(JpsError):
    """The manifest uses something the interpreter does not simulate.

    Raised instead of skipping, so a simulated run can never pass because a step was ignored.
    """


class PlaceholderError(JpsError):
    """A ``${...}`` placeholder cannot be resolved.

    The platform would leave it literal; the simulation treats it as a manifest bug because a
    literal ``${settings.x}`` reaching a node script is never what the generator meant.
    """


class ConditionError(JpsError):
    """An ``if``/``assert`` expression is outside the JavaScript subset we evaluate."""
