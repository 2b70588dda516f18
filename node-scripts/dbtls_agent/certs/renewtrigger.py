"""The daily renewal trigger on a node: when a certificate here is due, ask the platform to renew.

The add-on's manifest creates a platform script per installation that runs the add-on's ``renew``
action when called with the token of one of its layer's nodes (docs/renewal.md). This module keeps
what a node needs to call it and makes the call:

* ``<cert-dir>/.dbtls-state/renew-token`` (0600, root's): the node's own token, drawn here from
  ``os.urandom`` and read only here, by this process. It never reaches a command line (other users
  can read ``/proc/*/cmdline``), a log line, the output or the manifest: the node prints its SHA-256
  digest, and the platform script holds only the digests of the layer's tokens. The platform keeps
  the text of every ``cmd`` and the output of every node, so nothing secret may cross the manifest.
* ``<cert-dir>/.dbtls-state/renew.json``: the script's URL (https only). A token is kept across
  installs only for the same URL, which names the environment and the layer: a scale-out or a
  redeploy leaves the other nodes' tokens valid, and a clone (whose copied files name the original's
  URL) draws its own.
* ``/etc/cron.d/dbtls-renew``: root runs ``dbtls-agent renew check`` once a day at a minute drawn
  here, so the nodes of a layer do not all call at the same moment.

The call is an HTTPS POST with the token in the form-encoded body, verified against the system's
trusted roots (no way to turn verification off).
"""

import binascii
import datetime
import hashlib
import json
import os
import random
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Dict, Optional, Tuple

from dbtls_agent import fsio, state
from dbtls_agent.errors import AgentError

CRON_FILE = "/etc/cron.d/dbtls-renew"
LOG_FILE = "/var/log/dbtls-renew.log"
DEFAULT_AGENT = "/usr/local/sbin/dbtls-agent"
#: The window of the daily check: what the ``renew`` action renews (docs/renewal.md).
WITHIN_DAYS = 30
#: A token shorter than this is refused; a node draws 32 random bytes, 64 hex digits.
MIN_TOKEN = 64
TOKEN_BYTES = 32
MAX_TOKEN = 1024
TIMEOUT_S = 60
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def check_token(token: str) -> str:
    """A token as the platform script accepts it: letters and digits, 64 to 1024 of them (a node
    draws 64 hex digits)."""
    if not MIN_TOKEN <= len(token) <= MAX_TOKEN or not set(token) <= _TOKEN_CHARS:
        raise AgentError("renewal token: expected {} to {} letters and digits".format(MIN_TOKEN, MAX_TOKEN))
    return token


def check_url(url: str) -> str:
    """An https URL with a host, no user part and no fragment (the token goes in the body, never here)."""
    parts = urllib.parse.urlsplit(url)
    if (parts.scheme != "https" or not parts.hostname or "@" in parts.netloc or parts.fragment
            or "token" in urllib.parse.parse_qs(parts.query)
            or any(c.isspace() or ord(c) < 32 for c in url)):
        raise AgentError("renewal URL: expected https://HOST[:PORT]/PATH[?QUERY] without a token in it, got {!r}".format(url[:120]))
    return url


def cron_text(minute: int, hour: int, agent: str = DEFAULT_AGENT, cert_dir: str = state.DEFAULT_CERT_DIR) -> str:
    """The ``/etc/cron.d`` file: root, once a day. No secret in it: the token stays in its own file."""
    if not (0 <= minute <= 59 and 0 <= hour <= 23):
        raise AgentError("cron time out of range: {}:{}".format(hour, minute))
    for value in (agent, cert_dir):
        if not value.startswith("/") or any(c.isspace() or c in "%\\'\"$`;|&<>" for c in value):
            raise AgentError("not a plain absolute path for the cron line: {!r}".format(value))
    return ("# dbtls add-on: once a day, ask the platform to renew this layer's certificates when one on this\n"
            "# node ends within {days} days (docs/renewal.md). Written and removed by the add-on.\n"
            "SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
            "{m} {h} * * * root {agent} renew check --cert-dir {cert_dir} >>{log} 2>&1\n").format(
                days=WITHIN_DAYS, m=minute, h=hour, agent=agent, cert_dir=cert_dir, log=LOG_FILE)


def new_token() -> str:
    """256 bits from the kernel's generator, as 64 lowercase hex digits."""
    return binascii.hexlify(os.urandom(TOKEN_BYTES)).decode("ascii")


def token_digest(token: str) -> str:
    """What the platform script keeps of a token: its SHA-256, 64 lowercase hex digits."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _kept_token(cert_dir: str, url: str) -> Optional[str]:
    """The token already on this node when it is valid and was drawn for the same URL, else None."""
    try:
        token = read_token(cert_dir)
        same_url = read_url(cert_dir) == url
    except AgentError:
        return None
    return token if same_url else None


def install(cert_dir: str, url: str, cron_file: str = CRON_FILE, agent: str = DEFAULT_AGENT,
            rng: Optional[random.Random] = None) -> Dict[str, Any]:
    """Keep this node's token (a new one unless a valid one drawn for ``url`` is there),
    the URL, and (re)write the cron file at a random minute of the day. The answer carries the
    token's SHA-256, never the token."""
    check_url(url)
    rng = rng or random.SystemRandom()
    minute, hour = rng.randrange(60), rng.randrange(24)
    layout = state.layout(cert_dir)
    token = _kept_token(cert_dir, url)
    kept = token is not None
    fsio.ensure_dir(cert_dir, 0o711)  # the mode the agent keeps it at (options.save)
    fsio.ensure_dir(layout.root, 0o700)
    if token is None:
        token = new_token()
        fsio.atomic_write(layout.renew_token, token.encode("ascii"), mode=0o600,
                          owner=(0, 0) if os.geteuid() == 0 else None)
    fsio.atomic_write(layout.renew_settings, (json.dumps({"url": url}, sort_keys=True) + "\n").encode(), mode=0o600)
    fsio.ensure_dir(os.path.dirname(cron_file), 0o755)
    fsio.atomic_write(cron_file, cron_text(minute, hour, agent, cert_dir).encode(), mode=0o644)
    return {"cron_file": cron_file, "schedule": "{:02d}:{:02d} daily".format(hour, minute),
            "token": "kept" if kept else "new", "token_file": layout.renew_token,
            "token_sha256": token_digest(token), "url": url}


def remove(cert_dir: str, cron_file: str = CRON_FILE) -> Dict[str, Any]:
    """Remove the cron file, the token and the URL (nothing there: nothing to do)."""
    layout = state.layout(cert_dir)
    removed = [path for path in (cron_file, layout.renew_token, layout.renew_settings) if fsio.remove(path)]
    return {"removed": removed}


def read_token(cert_dir: str) -> str:
    """The token, refused unless its file is root's (or this user's) and readable by nobody else."""
    path = state.layout(cert_dir).renew_token
    data, info = fsio.read_with_stat(path)
    if data is None or info is None:
        raise AgentError("no renewal token at {} (the add-on writes it at install)".format(path))
    if info.st_mode & 0o077 or info.st_uid not in (0, os.geteuid()):
        raise AgentError("{} must be 0600 and root's; refusing to use it".format(path))
    return check_token(data.decode("ascii", "replace").strip())


def read_url(cert_dir: str) -> str:
    path = state.layout(cert_dir).renew_settings
    text = fsio.read_text(path)
    if text is None:
        raise AgentError("no renewal settings at {}".format(path))
    try:
        url = json.loads(text)["url"]
    except (ValueError, KeyError, TypeError):
        raise AgentError("{} is not a renewal settings file".format(path)) from None
    return check_url(str(url))


Poster = Callable[[str, bytes], Tuple[int, bytes]]


def https_post(url: str, body: bytes) -> Tuple[int, bytes]:
    """POST ``body`` (form-encoded) to ``url``, verifying the server against the system's roots."""
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded",
                                              "User-Agent": "dbtls-agent renew"})
    context = ssl.create_default_context()
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=context) as answer:
            return answer.status, answer.read(1 << 20)
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AgentError("cannot reach the platform at {}: {}".format(url, reason)) from None


def check(cert_dir: str, report: Dict[str, Any], post: Poster = https_post) -> Dict[str, Any]:
    """Given the node's ``certs due`` report: call the platform script when something is due.

    The answer is the script's JSON; anything but ``result: 0`` is an error (the next day retries).
    """
    due = list(report.get("due") or [])
    if not report.get("any_due"):
        return {"called": False, "due": []}
    token = read_token(cert_dir)
    url = read_url(cert_dir)
    status, body = post(url, urllib.parse.urlencode({"token": token}).encode("ascii"))
    if status != 200:
        raise AgentError("the platform answered HTTP {} for {}".format(status, url))
    try:
        answer = json.loads(body.decode("utf-8", "replace") or "null")
    except ValueError:
        raise AgentError("the platform's answer from {} is not JSON".format(url)) from None
    result = answer.get("result") if isinstance(answer, dict) else None
    if str(result) != "0":
        error = answer.get("error") if isinstance(answer, dict) else None
        raise AgentError("the platform refused the renewal request: result {} {}".format(
            result, str(error or "")[:200]).strip())
    return {"called": True, "due": due}


def stamp(now: Optional[datetime.datetime] = None) -> str:
    """The log line prefix (UTC)."""
    return (now or datetime.datetime.utcnow()).strftime("%Y-%m-%dT%H:%M:%SZ")
