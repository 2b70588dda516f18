"""A real TLS handshake with a MySQL-protocol server, in pure Python: what certificate does it serve?

Python's ``ssl.get_server_certificate()`` cannot do MySQL's in-protocol upgrade, and status variables
lie after a failed reload, so the agent checks the served certificate itself:

1. read the server's greeting packet (protocol 10) and check that it advertises CLIENT_SSL;
2. send a 32-byte SSLRequest packet (sequence 1) that sets CLIENT_SSL;
3. wrap the socket with an ``ssl.SSLContext`` that verifies the chain against our root and the
   host name, and take the peer certificate in DER form.

No credentials are sent; the server just logs an aborted connection. Packet building and parsing
are pure functions so they are unit-tested without a server.
"""

import hashlib
import socket
import ssl
import struct
from typing import Dict, NamedTuple, Optional

from dbtls_agent.errors import AgentError

CLIENT_LONG_PASSWORD = 0x00000001
CLIENT_PROTOCOL_41 = 0x00000200
CLIENT_SSL = 0x00000800
CLIENT_SECURE_CONNECTION = 0x00008000
CLIENT_PLUGIN_AUTH = 0x00080000
#: What we announce in the SSLRequest: enough for any 4.1+ server to accept the upgrade.
REQUEST_CAPABILITIES = (CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_SSL | CLIENT_SECURE_CONNECTION
                        | CLIENT_PLUGIN_AUTH)
MAX_PACKET = 16 * 1024 * 1024
CHARSET_UTF8MB4 = 45

Greeting = NamedTuple("Greeting", [("protocol", int), ("server_version", str), ("capabilities", int)])

ProbeResult = NamedTuple("ProbeResult", [("sha256", str), ("der", bytes), ("tls_version", str),
                                         ("cipher", str), ("server_version", str)])


def frame(payload: bytes, sequence: int) -> bytes:
    """One MySQL packet: 3-byte little-endian length, 1-byte sequence id, payload."""
    if len(payload) >= 0xFFFFFF:
        raise ValueError("payload too long for one packet")
    return struct.pack("<I", len(payload))[:3] + struct.pack("B", sequence & 0xFF) + payload


def ssl_request_packet(capabilities: int = REQUEST_CAPABILITIES, sequence: int = 1) -> bytes:
    """The SSLRequest: capabilities (4), max packet size (4), character set (1), 23 zero bytes."""
    payload = struct.pack("<IIB", capabilities | CLIENT_SSL, MAX_PACKET, CHARSET_UTF8MB4) + b"\0" * 23
    return frame(payload, sequence)


def _error_text(payload: bytes) -> str:
    """Message of an ERR packet (0xff, code, optional '#' + SQLSTATE, message)."""
    code = struct.unpack("<H", payload[1:3])[0] if len(payload) >= 3 else 0
    rest = payload[3:]
    if rest[:1] == b"#":
        rest = rest[6:]
    return "error {} from server: {}".format(code, rest.decode("utf-8", "replace").strip())


def parse_greeting(payload: bytes) -> Greeting:
    """Protocol-10 greeting: version byte, NUL-terminated version, connection id (4),
    8 bytes of scramble, filler, capabilities low 16 bits, then (optional) charset, status,
    capabilities high 16 bits."""
    if not payload:
        raise AgentError("empty greeting from server")
    if payload[0] == 0xFF:
        raise AgentError(_error_text(payload))
    if payload[0] != 10:
        raise AgentError("server speaks MySQL protocol version {}, not 10".format(payload[0]))
    end = payload.find(b"\0", 1)
    if end < 0:
        raise AgentError("malformed server greeting (no version terminator)")
    version = payload[1:end].decode("utf-8", "replace")
    pos = end + 1 + 4 + 8 + 1
    if len(payload) < pos + 2:
        raise AgentError("malformed server greeting (too short)")
    caps = struct.unpack("<H", payload[pos:pos + 2])[0]
    if len(payload) >= pos + 2 + 1 + 2 + 2:
        caps |= struct.unpack("<H", payload[pos + 5:pos + 7])[0] << 16
    return Greeting(10, version, caps)


def _read_exact(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise AgentError("server closed the connection during the greeting")
        data += chunk
    return data


def read_packet(sock: socket.socket) -> bytes:
    header = _read_exact(sock, 4)
    length = struct.unpack("<I", header[:3] + b"\0")[0]
    return _read_exact(sock, length)


def make_context(ca_file: str, check_hostname: bool = True, min_version: Optional[str] = None) -> ssl.SSLContext:
    """A client context trusting only ``ca_file``; host-name check on by default."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT) if hasattr(ssl, "PROTOCOL_TLS_CLIENT") else \
        ssl.SSLContext(ssl.PROTOCOL_SSLv23)
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = check_hostname
    try:
        context.load_verify_locations(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise AgentError("cannot load CA file {}: {}".format(ca_file, exc)) from None
    # ssl.TLSVersion is 3.7+; on 3.6 the OP_NO_* flags give the same floor.
    versions = getattr(ssl, "TLSVersion", None)
    if versions is not None:
        context.minimum_version = versions.TLSv1_3 if min_version == "TLSv1.3" else versions.TLSv1_2
    else:
        context.options |= ssl.OP_NO_TLSv1 | ssl.OP_NO_TLSv1_1
    return context


def probe(host: str, port: int, ca_file: str, server_name: Optional[str] = None, timeout: float = 10.0,
          check_hostname: bool = True) -> ProbeResult:
    """Handshake with ``host:port``; verify the chain against ``ca_file`` and the name
    ``server_name`` (default ``host``). Raises AgentError with the reason when anything fails."""
    name = server_name or host
    context = make_context(ca_file, check_hostname)
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise AgentError("cannot connect to {}:{}: {}".format(host, port, exc.strerror or exc)) from None
    try:
        raw.settimeout(timeout)
        greeting = parse_greeting(read_packet(raw))
        if not greeting.capabilities & CLIENT_SSL:
            raise AgentError("{}:{} ({}) does not offer TLS".format(host, port, greeting.server_version))
        raw.sendall(ssl_request_packet())
        with context.wrap_socket(raw, server_hostname=name) as tls:
            der = tls.getpeercert(binary_form=True) or b""
            cipher = tls.cipher()
            return ProbeResult(hashlib.sha256(der).hexdigest(), der, tls.version() or "",
                               cipher[0] if cipher else "", greeting.server_version)
    except ssl.CertificateError as exc:
        raise AgentError("TLS to {}:{} failed the host-name check for {!r}: {}".format(host, port, name, exc)) from None
    except ssl.SSLError as exc:
        raise AgentError("TLS handshake with {}:{} failed: {}".format(
            host, port, getattr(exc, "reason", None) or exc)) from None
    except OSError as exc:
        raise AgentError("TLS handshake with {}:{} failed: {}".format(host, port, exc.strerror or exc)) from None
    finally:
        raw.close()


def describe(result: ProbeResult) -> Dict[str, str]:
    return {"sha256": result.sha256, "tls_version": result.tls_version, "cipher": result.cipher,
            "server_version": result.server_version}
