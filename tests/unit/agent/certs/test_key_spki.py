"""A private key's public half read from its DER must equal what the crypto library derives.

``install-certs`` matches certificates to keys by ``der.private_key_spki``; a byte of difference
would make a node refuse its own certificate, so every key form the agent or openssl writes is
compared with the library's answer and with the certificate issued for the key.
"""

import hashlib
import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization

from dbtls_agent.crypto import KEY_TYPES, der, get_backend
from dbtls_agent.errors import AgentError

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command not installed")


def _openssl(args, data):
    return subprocess.run(["openssl"] + args, input=data, stdout=subprocess.PIPE, check=True).stdout


def _library_sha(key_pem):
    return get_backend("cryptography").load_key_info(key_pem)["spki_sha256"]


@pytest.mark.parametrize("backend_name", ["cryptography", "openssl"])
@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_pkcs8_keys_of_both_backends(backend_name, key_type):
    backend = get_backend(backend_name)
    key = backend.generate_key(key_type)
    spki = der.private_key_spki(key)
    assert spki is not None
    info = der.parse_spki(spki)
    assert info["key_type"] == key_type
    assert info["spki_sha256"] == _library_sha(key) == backend.load_key_info(key)["spki_sha256"]
    assert spki == _openssl(["pkey", "-pubout", "-outform", "DER"], key)


def test_traditional_forms():
    """PKCS#1 (``RSA PRIVATE KEY``, what openssl 1.0.2 genrsa writes) and SEC1 (``EC PRIVATE KEY``)."""
    backend = get_backend("openssl")
    rsa = backend.generate_key("rsa2048")
    pkcs1 = _openssl(["rsa", "-traditional"], rsa)
    assert pkcs1.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert der.private_key_spki(pkcs1) == der.private_key_spki(rsa)
    ec = backend.generate_key("ecdsa-p256")
    sec1 = _openssl(["ec", "-outform", "PEM"], ec)
    assert sec1.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    assert der.parse_spki(der.private_key_spki(sec1))["spki_sha256"] == _library_sha(ec)


def test_certificate_matches_key():
    backend = get_backend("cryptography")
    key = backend.generate_key("rsa2048")
    ca = backend.create_ca(key, "CA", 30)
    assert backend.public_key_sha256(key) == backend.parse_cert(ca)["spki_sha256"]


def test_forms_it_does_not_read_fall_back_to_the_backend():
    """None for what the decoder does not read; the backend then answers or refuses."""
    backend = get_backend("openssl")
    ec = backend.generate_key("ecdsa-p256")
    no_point = _openssl(["ec", "-no_public"], ec)
    assert der.private_key_spki(no_point) is None
    assert backend.public_key_info(no_point)["spki_sha256"] == _library_sha(ec)
    encrypted = subprocess.run(
        ["openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-passout", "env:DBTLS_TEST_PASS"],
        input=ec, stdout=subprocess.PIPE, check=True, env={"DBTLS_TEST_PASS": "throwaway", "PATH": "/usr/bin:/bin"}).stdout
    assert der.private_key_spki(encrypted) is None
    for garbage in (b"", b"not a key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", ec + ec):
        assert der.private_key_spki(garbage) is None
    for name in ("cryptography", "openssl"):
        with pytest.raises(AgentError):
            get_backend(name).public_key_info(b"not a key")


def test_generate_keys_keeps_order_and_raises():
    backend = get_backend("openssl")
    keys = backend.generate_keys(["rsa2048", "ecdsa-p256"])
    assert [der.parse_spki(der.private_key_spki(k))["key_type"] for k in keys] == ["rsa2048", "ecdsa-p256"]
    assert backend.generate_keys([]) == []
    with pytest.raises(AgentError, match="unknown key type"):
        backend.generate_keys(["rsa2048", "dsa1024"])


def _cert_der(pem):
    return der.single_der(pem, ("CERTIFICATE",))


@pytest.fixture(scope="module")
def issued_pair():
    backend = get_backend("cryptography")
    ca_key = backend.generate_key("rsa2048")
    ca = backend.create_ca(ca_key, "env CA", 30)
    key = backend.generate_key("ecdsa-p256")
    server = backend.sign_csr(backend.make_csr(key, "node1", ["DNS:node1"], "server"), ca, ca_key, "server", "node1",
                              ["DNS:node1"], 30)
    return {"ca": ca, "ca_key": ca_key, "server": server, "key": key}


@pytest.mark.parametrize("backend_name", ["cryptography", "openssl"])
def test_verify_refuses_what_it_must(issued_pair, backend_name):
    """The certificate check used by install-certs: signature, issuer, CA flag, dates."""
    backend = get_backend(backend_name)
    backend.verify_one(issued_pair["server"], issued_pair["ca"])
    body = bytearray(_cert_der(issued_pair["server"]))
    body[-5] ^= 0x01  # inside the signature
    with pytest.raises(AgentError):
        backend.verify_one(der.to_pem("CERTIFICATE", bytes(body)), issued_pair["ca"])
    impostor_key = backend.generate_key("rsa2048")
    impostor = backend.create_ca(impostor_key, "env CA", 30)  # same name, other key
    with pytest.raises(AgentError):
        backend.verify_one(issued_pair["server"], impostor)
    with pytest.raises(AgentError):
        backend.verify_one(issued_pair["server"], issued_pair["server"])
    with pytest.raises(AgentError, match="not valid now|expired"):
        backend.verify_one(issued_pair["server"], _expired_copy(issued_pair["ca"], issued_pair["ca_key"]))


@pytest.mark.parametrize("backend_name", ["cryptography", "openssl"])
def test_an_ecdsa_ca_is_checked_by_the_backend(backend_name):
    """ECDSA signatures go to the backend (the library, or ``openssl dgst``): a good one passes, a changed
    byte of the certificate or of the signature fails, and so does another CA key under the same name."""
    backend = get_backend(backend_name)
    ca_key = backend.generate_key("ecdsa-p256")
    ca = backend.create_ca(ca_key, "ec CA", 30)
    key = backend.generate_key("rsa2048")
    cert = backend.sign_csr(backend.make_csr(key, "node1", ["DNS:node1"], "server"), ca, ca_key, "server", "node1",
                            ["DNS:node1"], 30)
    backend.verify_one(cert, ca)
    body = _cert_der(cert)
    parts = der.signed_parts(body)
    tbs_at = body.index(parts["tbs"])
    for index in (tbs_at + len(parts["tbs"]) // 2, len(body) - 3):  # in the signed part, in the signature
        changed = bytearray(body)
        changed[index] ^= 0x01
        with pytest.raises(AgentError):
            backend.verify_one(der.to_pem("CERTIFICATE", bytes(changed)), ca)
    other = backend.create_ca(backend.generate_key("ecdsa-p256"), "ec CA", 30)
    with pytest.raises(AgentError, match="does not verify"):
        backend.verify_one(cert, other)


def _expired_copy(ca_pem, ca_key_pem):
    """The CA certificate again (same name and key), valid only in the past."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    ca = x509.load_pem_x509_certificate(ca_pem)
    key = serialization.load_pem_private_key(ca_key_pem, None)
    past = datetime.datetime(2020, 1, 1)
    builder = x509.CertificateBuilder().subject_name(ca.subject).issuer_name(ca.subject).public_key(key.public_key())
    builder = builder.serial_number(7).not_valid_before(past).not_valid_after(past + datetime.timedelta(days=1))
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def test_der_reading_agrees_with_the_library(issued_pair):
    """Both backends read certificates with der.py; the library's own reading is the reference."""
    from cryptography import x509

    for pem in (issued_pair["ca"], issued_pair["server"]):
        info = der.parse_certificate(_cert_der(pem))
        cert = x509.load_pem_x509_certificate(pem)
        assert info["serial"] == format(cert.serial_number, "x")
        assert info["cn"] == cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        assert info["issuer_cn"] == cert.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        assert info["not_after"] == cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert info["not_before"] == cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert info["is_ca"] == cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        assert info["spki_sha256"] == hashlib.sha256(spki).hexdigest()
        parts = der.signed_parts(_cert_der(pem))
        assert parts["tbs"] == cert.tbs_certificate_bytes and parts["signature"] == cert.signature
    server = der.parse_certificate(_cert_der(issued_pair["server"]))
    assert server["sans"] == ["DNS:node1"] and server["extended_key_usage"] == ["serverAuth"]


@pytest.mark.parametrize("key_type, absent", [("rsa2048", "cryptography.hazmat"), ("ecdsa-p256", "cryptography.x509")])
def test_install_certs_imports_only_what_it_checks_with(key_type, absent):
    """install-certs reads and checks certificates without ``cryptography.x509`` (its slowest import),
    and an RSA CA's signatures without any of cryptography's OpenSSL backend (``rsapkcs1``)."""
    import os
    import sys

    code = ("import sys; from dbtls_agent.crypto import get_backend; b = get_backend('cryptography'); "
            "b.verify_one(sys.argv[1].encode(), sys.argv[2].encode()); b.public_key_sha256(sys.argv[3].encode()); "
            "print(any(m == sys.argv[4] or m.startswith(sys.argv[4] + '.') for m in sys.modules))")
    backend = get_backend("cryptography")
    ca_key = backend.generate_key(key_type)
    ca = backend.create_ca(ca_key, "CA", 1)
    key = backend.generate_key(key_type)
    cert = backend.sign_csr(backend.make_csr(key, "n", [], "client"), ca, ca_key, "client", "n", [], 1)
    agent = os.path.join(os.path.dirname(der.__file__), "..", "..")
    out = subprocess.run([sys.executable, "-c", code, cert.decode(), ca.decode(), key.decode(), absent],
                         stdout=subprocess.PIPE, check=True, env=dict(os.environ, PYTHONPATH=agent)).stdout
    assert out.strip() == b"False"
