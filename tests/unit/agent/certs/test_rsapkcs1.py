"""The standard-library RSA PKCS#1 v1.5 check must agree with the crypto library, and refuse forgeries.

``install-certs`` checks an RSA CA's signatures with ``rsapkcs1`` instead of loading cryptography's
OpenSSL backend; a check that accepts what the library refuses would let a bad certificate in, one
that refuses what the library accepts would lock a node out of its own certificates.
"""

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from dbtls_agent.crypto import der, pycakeys, rsapkcs1

_HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


def _spki(key):
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def keys():
    return {bits: rsa.generate_private_key(65537, bits) for bits in (1024, 2048, 3072)}


def _raw_sign(key, encoded: bytes) -> bytes:
    """Raw RSA on a chosen encoding (what a forger would have to produce), without any padding rules."""
    numbers = key.private_numbers()
    size = (numbers.public_numbers.n.bit_length() + 7) // 8
    return pow(int.from_bytes(encoded, "big"), numbers.d, numbers.public_numbers.n).to_bytes(size, "big")


@pytest.mark.parametrize("bits", [1024, 2048, 3072])
@pytest.mark.parametrize("hash_name", rsapkcs1.HASHES)
def test_agrees_with_the_library(keys, bits, hash_name):
    key = keys[bits]
    numbers = der.rsa_public_numbers(_spki(key))
    assert numbers == (key.public_key().public_numbers().n, key.public_key().public_numbers().e)
    message = b"tbs certificate bytes " + hash_name.encode()
    signature = key.sign(message, padding.PKCS1v15(), _HASHES[hash_name]())
    assert rsapkcs1.verify(numbers, signature, message, hash_name)
    assert not rsapkcs1.verify(numbers, signature, message + b"x", hash_name)
    other = "sha512" if hash_name != "sha512" else "sha256"
    assert not rsapkcs1.verify(numbers, signature, message, other)
    for index in (0, len(signature) // 2, len(signature) - 1):
        tampered = bytearray(signature)
        tampered[index] ^= 0x01
        assert not rsapkcs1.verify(numbers, bytes(tampered), message, hash_name)


def test_refuses_the_wrong_key_and_malformed_signatures(keys):
    key, other = keys[2048], keys[3072]
    numbers = der.rsa_public_numbers(_spki(key))
    message = b"payload"
    signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    assert not rsapkcs1.verify(der.rsa_public_numbers(_spki(other)), signature, message, "sha256")
    assert not rsapkcs1.verify(numbers, signature[1:], message, "sha256")  # shorter than the modulus
    assert not rsapkcs1.verify(numbers, b"\x00" + signature, message, "sha256")  # longer
    n = numbers[0]
    too_big = n.to_bytes(256, "big")
    assert not rsapkcs1.verify(numbers, too_big, message, "sha256")
    assert not rsapkcs1.verify(numbers, signature, message, "sha1")  # not a scheme the agent accepts


def test_refuses_encodings_a_lenient_parser_would_take(keys):
    """Right digest, wrong surroundings: each is a validly RSA-signed block that is not EMSA-PKCS1-v1_5."""
    key = keys[2048]
    numbers = der.rsa_public_numbers(_spki(key))
    message = b"tbs"
    good = rsapkcs1.expected_encoding(message, "sha256", 256)
    assert rsapkcs1.verify(numbers, _raw_sign(key, good), message, "sha256")
    digest_info = good[-51:]
    forged = [
        b"\x00\x01" + b"\xff" * 8 + b"\x00" + digest_info + b"\x00" * (256 - 11 - 51),  # garbage after the digest
        b"\x00\x01" + b"\xfe" * (256 - 3 - 51) + b"\x00" + digest_info,  # padding bytes not FF
        b"\x00\x02" + b"\xff" * (256 - 3 - 51) + b"\x00" + digest_info,  # block type 2
        good[:-33] + b"\x20" + bytes(32),  # right layout, wrong digest
    ]
    for block in forged:
        assert len(block) == 256
        assert not rsapkcs1.verify(numbers, _raw_sign(key, block), message, "sha256")


def test_keys_a_ca_cannot_have():
    assert not rsapkcs1.usable_key((2 ** 2047 + 1, 1))  # e = 1: the "signature" would be the encoding itself
    assert not rsapkcs1.usable_key((2 ** 2047 + 1, 65536))  # even exponent
    assert not rsapkcs1.usable_key((2 ** 511 + 1, 65537))  # 512-bit modulus
    assert not rsapkcs1.usable_key((-(2 ** 2047 + 1), 65537))
    assert rsapkcs1.usable_key((2 ** 2047 + 1, 65537))
    block = rsapkcs1.expected_encoding(b"m", "sha256", 256)
    value = int.from_bytes(block, "big")
    assert not rsapkcs1.verify((2 ** 2047 + 1, 1), value.to_bytes(256, "big"), b"m", "sha256")


def test_only_rsa_keys_have_numbers():
    ec_key = ec.generate_private_key(ec.SECP256R1())
    assert der.rsa_public_numbers(_spki(ec_key)) is None
    with pytest.raises(der.DerError):
        der.rsa_public_numbers(b"\x30\x03\x02\x01\x01")


def test_digest_info_prefixes_are_the_der_of_digest_info():
    """Each prefix plus a digest is one DigestInfo SEQUENCE whose OCTET STRING holds exactly the digest."""
    for name in rsapkcs1.HASHES:
        digest = hashlib.new(name, b"x").digest()
        encoded = rsapkcs1.expected_encoding(b"x", name, 512)
        info = encoded[encoded.index(b"\x00", 2) + 1:]
        assert info.endswith(digest)
        assert info[0] == 0x30 and info[1] == len(info) - 2
        assert info[-len(digest) - 2:-len(digest)] == bytes([0x04, len(digest)])


def test_new_rsa_keys_skip_the_check_where_the_release_asks_for_it(monkeypatch):
    """cryptography 36-38 keep the switch on their backend object; newer releases have no such switch."""
    from cryptography.hazmat.backends.openssl.backend import backend

    monkeypatch.setattr(backend, "_rsa_skip_check_key", False, raising=False)
    pycakeys.generate("rsa2048")
    assert backend._rsa_skip_check_key is True
    monkeypatch.delattr(backend, "_rsa_skip_check_key")
    assert der.private_key_spki(pycakeys.generate("rsa2048")) is not None
    assert not hasattr(backend, "_rsa_skip_check_key")
