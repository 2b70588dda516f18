"""Node-to-node payloads as the manifest carries them: base64 made by the platform, read as data.

Nothing a node prints reaches another node's script as text. The manifest stores a node's output
with the platform's ``${response.out.toBase64()}``, and a receiving script only ever passes such
base64 on to the agent's stdin; this module turns it back into bytes and checks its shape before
anything else looks at it. A hostile or broken node can therefore send wrong data, which the
receiving command refuses, but never code.

Two shapes exist:

* one value: a single base64 string (the output of one node);
* a list: whitespace-separated ``<node id>:<base64>`` tokens, one per node, in the order the
  manifest visited the nodes. The node ids come from the platform, the base64 from the platform's
  encoding of that node's output. An empty base64 part means the node printed nothing.
"""

import base64
import binascii
import re
from typing import Dict, List, Tuple

from dbtls_agent.errors import AgentError

#: Upper bound for one decoded payload: a CSR pair is ~3 KiB, a signed bundle for 100 nodes ~400 KiB.
MAX_BYTES = 4 * 1024 * 1024
_B64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
_TOKEN = re.compile(r"^(?P<id>[0-9]{1,12}):(?P<b64>[A-Za-z0-9+/]*={0,2})$")


def decode(text: str, what: str = "payload") -> bytes:
    """Bytes of one base64 value; a clear error for anything that is not strict base64."""
    value = text.strip()
    if len(value) > MAX_BYTES * 4 // 3 + 4:
        raise AgentError("{} is larger than {} bytes".format(what, MAX_BYTES))
    if not _B64.match(value) or len(value) % 4:
        raise AgentError("{} is not base64 text (it must come from the platform's toBase64())".format(what))
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, ValueError):
        raise AgentError("{} is not valid base64".format(what)) from None


def decode_text(text: str, what: str = "payload") -> str:
    """One base64 value that must hold UTF-8 text."""
    try:
        return decode(text, what).decode("utf-8")
    except UnicodeDecodeError:
        raise AgentError("{} does not decode to UTF-8 text".format(what)) from None


def decode_list(text: str, what: str = "payload list") -> List[Tuple[int, bytes]]:
    """``[(node id, bytes)]`` of a ``<id>:<base64> ...`` list; duplicate ids are an error."""
    items = []  # type: List[Tuple[int, bytes]]
    seen = set()
    total = 0
    for token in text.split():
        match = _TOKEN.match(token)
        if not match:
            shown = token if len(token) <= 40 else token[:37] + "..."
            raise AgentError("{}: {!r} is not '<node id>:<base64>'".format(what, shown))
        node_id = int(match.group("id"))
        if node_id in seen:
            raise AgentError("{}: node {} appears twice".format(what, node_id))
        seen.add(node_id)
        data = decode(match.group("b64"), "{} entry of node {}".format(what, node_id))
        total += len(data)
        if total > MAX_BYTES:
            raise AgentError("{} is larger than {} bytes".format(what, MAX_BYTES))
        items.append((node_id, data))
    return items


def decode_fields(text: str, allowed: "Tuple[str, ...]", what: str = "form values") -> "Dict[str, str]":
    """``name=<base64>`` tokens (form values the manifest sends, each encoded by the platform) ->
    {name: text}; a name outside ``allowed`` is an error. An empty base64 part is an empty value."""
    out = {}  # type: Dict[str, str]
    for token in text.split():
        name, sep, value = token.partition("=")
        if not sep or name not in allowed:
            raise AgentError("{}: expected '<name>=<base64>' with a name of {}, got {!r}".format(
                what, ", ".join(allowed), token[:40]))
        out[name] = decode_text(value, "{} {}".format(what, name)) if value else ""
    return out
