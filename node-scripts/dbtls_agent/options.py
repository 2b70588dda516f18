"""The install form's choices, kept on each node so later runs do not need the form again.

The add-on's install form (key type, minimum TLS version, the toggles, extra names) is only
certainly known to the platform while the add-on is being installed: whether a button's handler
sees those values is not documented. So every node of the layer records them at install
(``options save``) in the state directory, and every later run on that node (re-issue, scale-out,
a password-reset event, the status line) reads them back with ``--options``.

Values arrive from the form as text (toggles as ``true``/``false``); they are validated here, so a
value that bypassed the form's own checks (an install through the API) is refused with one line.
"""

import argparse
import json
import re
from typing import Any, Dict, List

from dbtls_agent import fsio, state
from dbtls_agent.crypto.names import normalize_sans
from dbtls_agent.errors import AgentError
from dbtls_agent.vocab import DEFAULT_KEY_TYPE, DEFAULT_MIN_TLS, KEY_TYPES, MIN_TLS_VERSIONS

MIN_TLS = MIN_TLS_VERSIONS
TOGGLES = ("require_tls", "client_cert_auth", "md5_compat", "upstream_mode", "enforce_anyway")
DEFAULTS = {
    "key_type": DEFAULT_KEY_TYPE, "min_tls": DEFAULT_MIN_TLS, "extra_names": [],
    "require_tls": False, "client_cert_auth": False, "md5_compat": False, "upstream_mode": False,
    "enforce_anyway": False,
}  # type: Dict[str, Any]
#: Option -> attribute of the ``enable`` arguments it sets.
ENABLE_ARGS = {"min_tls": "min_tls", "require_tls": "require_tls", "client_cert_auth": "client_cert_auth",
               "md5_compat": "keep_md5_compat", "upstream_mode": "upstream_mode",
               "enforce_anyway": "enforce_anyway"}


def path(cert_dir: str) -> str:
    return state.layout(cert_dir).options


def parse_toggle(name: str, text: str) -> bool:
    """A form toggle: ``true``/``false`` (any case); empty means the field was not sent: false."""
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off", ""):
        return False
    raise AgentError("option {}: expected true or false, got {!r}".format(name, text[:40]))


def parse_names(text: str) -> List[str]:
    """Extra certificate names typed in the form: separated by commas, semicolons or spaces."""
    items = [item for item in re.split(r"[,;\s]+", text.strip()) if item]
    if len(items) > 50:
        raise AgentError("option extra names: at most 50 names")
    sans = normalize_sans(items)
    return [san.split(":", 1)[1] for san in sans]


def validate(raw: Dict[str, str]) -> Dict[str, Any]:
    """Typed options from the form's text values; unknown keys are an error, missing ones default."""
    out = dict(DEFAULTS)
    for key, text in raw.items():
        if key == "key_type":
            if text not in KEY_TYPES:
                raise AgentError("option key type: {!r} is not one of {}".format(text[:40], ", ".join(KEY_TYPES)))
            out[key] = text
        elif key == "min_tls":
            if text not in MIN_TLS:
                raise AgentError("option minimum TLS: {!r} is not one of {}".format(text[:40], ", ".join(MIN_TLS)))
            out[key] = text
        elif key == "extra_names":
            out[key] = parse_names(text)
        elif key in TOGGLES:
            out[key] = parse_toggle(key, text)
        else:
            raise AgentError("unknown option {!r}".format(key))
    return out


def save(cert_dir: str, values: Dict[str, Any]) -> None:
    fsio.ensure_dir(cert_dir, 0o711)
    fsio.ensure_dir(state.state_dir(cert_dir), 0o700)
    fsio.atomic_write(path(cert_dir), (json.dumps(values, indent=1, sort_keys=True) + "\n").encode("utf-8"), 0o600)


def load(cert_dir: str) -> Dict[str, Any]:
    """The saved options, or the defaults when none were saved (a node set up before options)."""
    text = fsio.read_text(path(cert_dir))
    if text is None:
        return dict(DEFAULTS)
    try:
        data = json.loads(text)
    except ValueError:
        raise AgentError("{} is not valid JSON; install the add-on again or delete it".format(path(cert_dir))) from None
    if not isinstance(data, dict):
        raise AgentError("{} does not hold a JSON object".format(path(cert_dir)))
    out = dict(DEFAULTS)
    out.update({k: v for k, v in data.items() if k in DEFAULTS})
    return out


def apply_to_enable(args: argparse.Namespace, values: Dict[str, Any]) -> None:
    """Set the ``enable`` arguments the options decide (flags given with ``--options`` lose)."""
    for key, attr in ENABLE_ARGS.items():
        if hasattr(args, attr):
            setattr(args, attr, values[key])
