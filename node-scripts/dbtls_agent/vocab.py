"""The words the install form, the command line and the roles share: key types and TLS minimums.

Defined once here; the generator's install form offers exactly these values (a unit test compares
the generated manifest with them), the commands take them as argparse ``choices``, and the options
file is validated against them. A key type's name is parsed in one place, :class:`KeySpec`.

Where the minimum applies: PostgreSQL (``ssl_min_protocol_version``), the MySQL family
(``tls_version``) and Pgpool-II, which has no setting of its own (``MinProtocol`` in the OpenSSL
configuration the agent gives its service: roles/pgpool/opensslconf.py). ProxySQL has none either
and sets its frontend's minimum in its own code: its enable result says the minimum is not enforced
there (roles/proxysql/plan.min_tls_note).
"""

from typing import List, Optional

from dbtls_agent.errors import AgentError

#: Private key types the agent can generate (``cryptography`` and ``openssl`` backends alike).
KEY_TYPES = ("rsa2048", "rsa3072", "rsa4096", "ecdsa-p256")
DEFAULT_KEY_TYPE = "rsa2048"

#: Lowest TLS versions a server may be told to accept; TLS 1.0 and 1.1 are never offered.
MIN_TLS_VERSIONS = ("TLSv1.2", "TLSv1.3")
DEFAULT_MIN_TLS = "TLSv1.2"

#: Named curves by their size, as a key reports them (``ecdsa-p256``) and as OpenSSL names them.
_CURVES = {256: "P-256", 384: "P-384", 521: "P-521"}


class KeySpec(object):
    """A key type parsed once: ``name`` (``rsa3072``, ``ecdsa-p256``, or whatever a key reports),
    ``algorithm`` (``rsa``, ``ecdsa`` or ``other``), ``bits`` (None when the name does not say) and,
    for ECDSA, ``curve`` (``P-256``)."""

    __slots__ = ("name", "algorithm", "bits", "curve")

    def __init__(self, name: str, algorithm: str, bits: Optional[int] = None, curve: Optional[str] = None) -> None:
        self.name = name
        self.algorithm = algorithm
        self.bits = bits
        self.curve = curve

    @classmethod
    def parse(cls, text: str) -> "KeySpec":
        """One of :data:`KEY_TYPES` (what the agent generates); one-line error otherwise."""
        if text not in KEY_TYPES:
            raise AgentError("unknown key type {!r} (choose {})".format(text, ", ".join(KEY_TYPES)))
        return cls.of(text)

    @classmethod
    def of(cls, text: str) -> "KeySpec":
        """Any key type name a key's public half reports (``rsa1024``, ``ecdsa-p384``, ``ec-<curve>``,
        ``ed25519``, ``unknown-...``): what it says about algorithm and size, nothing refused."""
        name = str(text).strip().lower()
        if name.startswith("rsa"):
            return cls(name, "rsa", int(name[3:]) if name[3:].isdigit() else None)
        if name.startswith("ecdsa-p") and name[7:].isdigit():
            bits = int(name[7:])
            return cls(name, "ecdsa", bits, _CURVES.get(bits))
        if name.startswith("ec"):
            return cls(name, "ecdsa")
        return cls(name, "other")

    @property
    def is_rsa(self) -> bool:
        return self.algorithm == "rsa"

    @property
    def is_ecdsa(self) -> bool:
        return self.algorithm == "ecdsa"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeySpec) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return "KeySpec({!r})".format(self.name)


def tls_versions(min_tls: Optional[str]) -> Optional[List[str]]:
    """The protocol list a minimum means: TLSv1.3 -> ``["TLSv1.3"]``; TLSv1.2 (the default, also
    written ``1.2``) -> None, the server's own TLSv1.2,TLSv1.3."""
    value = str(min_tls or "").lower().replace("tlsv", "")
    if value in ("", "1.2"):
        return None
    if value == "1.3":
        return ["TLSv1.3"]
    raise AgentError("--min-tls must be 1.2 or 1.3, not {!r}".format(min_tls))
