"""Key and certificate operations behind one interface, with a backend picked at run time.

``cryptography`` is preferred (no process per operation, so a node set takes milliseconds); the
``openssl`` command is the fallback for nodes whose Python lacks it or has a version too old to
trust. ``DBTLS_CRYPTO_BACKEND=openssl|cryptography`` forces one, for tests and for debugging a node.
"""

import os
from typing import Optional

from dbtls_agent.crypto.base import DEFAULT_DAYS, DEFAULT_KEY_TYPE, KEY_TYPES, KINDS, CryptoBackend
from dbtls_agent.errors import AgentError

__all__ = ["DEFAULT_DAYS", "DEFAULT_KEY_TYPE", "KEY_TYPES", "KINDS", "CryptoBackend", "get_backend", "BACKENDS"]

BACKENDS = ("cryptography", "openssl")
# Oldest cryptography release whose API this agent is written against (backend arguments optional,
# PKCS#8 output, SubjectKeyIdentifier.from_public_key); older ones fall back to the openssl command.
MIN_CRYPTOGRAPHY = (3, 1)


def _cryptography_usable() -> bool:
    try:
        import cryptography
    except ImportError:
        return False
    try:
        version = tuple(int(p) for p in cryptography.__version__.split(".")[:2])
    except ValueError:
        return False
    return version >= MIN_CRYPTOGRAPHY


def get_backend(name: Optional[str] = None) -> CryptoBackend:
    """The backend called ``name``, else DBTLS_CRYPTO_BACKEND's, else the best one available."""
    choice = name or os.environ.get("DBTLS_CRYPTO_BACKEND") or ""
    if choice not in ("",) + BACKENDS:
        raise AgentError("unknown crypto backend {!r} (choose {})".format(choice, " or ".join(BACKENDS)))
    if choice == "cryptography" or (not choice and _cryptography_usable()):
        if not _cryptography_usable():
            raise AgentError(
                "crypto backend 'cryptography' requested but the package (>= {}.{}) is not importable".format(
                    *MIN_CRYPTOGRAPHY
                )
            )
        from dbtls_agent.crypto.pyca import CryptographyBackend

        return CryptographyBackend()
    from dbtls_agent.crypto.opensslcli import OpensslBackend

    return OpensslBackend()
