"""RSA PKCS#1 v1.5 signature verification on the standard library (RFC 8017, section 8.2.2).

Why it exists: ``install-certs`` only has to check that each certificate was signed by the CA, and
with ``cryptography`` older than 39 the first call into its OpenSSL backend imports
``cryptography.x509`` and loads the bindings, about 50 ms of CPU, more than the rest of the command.
An RSA check needs no private key and no library: ``s ** e mod n``, then the expected encoding of
the message's digest is built in full and compared byte for byte with the result. Nothing in the
result is parsed, so the forgeries that fool lenient parsers of the padding (short padding,
trailing garbage, hash parameters) cannot pass. Everything checked here is public; there is no
secret whose timing could leak.
"""

import hashlib
import hmac
from typing import Tuple

# DER of DigestInfo ::= SEQUENCE { AlgorithmIdentifier { hash OID, NULL }, OCTET STRING (digest) },
# up to the digest itself (RFC 8017, section 9.2, note 1).
_DIGEST_INFO_PREFIX = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
HASHES = tuple(sorted(_DIGEST_INFO_PREFIX))
#: Modulus sizes accepted for a verifying key, in bits (OpenSSL refuses larger ones too).
MIN_BITS, MAX_BITS = 1024, 16384


def usable_key(numbers: Tuple[int, int]) -> bool:
    """True for a public key a CA can have: a modulus of a sane size and an odd exponent >= 3."""
    modulus, exponent = numbers
    return MIN_BITS <= modulus.bit_length() <= MAX_BITS and 3 <= exponent < modulus and exponent % 2 == 1


def expected_encoding(message: bytes, hash_name: str, size: int) -> bytes:
    """EMSA-PKCS1-v1_5 of ``message`` for a modulus of ``size`` bytes: 00 01 FF..FF 00 DigestInfo."""
    digest_info = _DIGEST_INFO_PREFIX[hash_name] + hashlib.new(hash_name, message).digest()
    padding = size - len(digest_info) - 3
    if padding < 8:
        raise ValueError("modulus too short for a {} signature".format(hash_name))
    return b"\x00\x01" + b"\xff" * padding + b"\x00" + digest_info


def verify(numbers: Tuple[int, int], signature: bytes, message: bytes, hash_name: str) -> bool:
    """True when ``signature`` is the PKCS#1 v1.5 signature of ``message`` with ``hash_name``.

    ``numbers`` is the signer's ``(n, e)``. A signature must be exactly as long as the modulus, as
    RFC 8017 requires and as OpenSSL writes them; a key that ``usable_key`` refuses verifies nothing.
    """
    if hash_name not in _DIGEST_INFO_PREFIX or not usable_key(numbers):
        return False
    modulus, exponent = numbers
    size = (modulus.bit_length() + 7) // 8
    if len(signature) != size:
        return False
    value = int.from_bytes(signature, "big")
    if value >= modulus:
        return False
    recovered = pow(value, exponent, modulus).to_bytes(size, "big")
    return hmac.compare_digest(recovered, expected_encoding(message, hash_name, size))
