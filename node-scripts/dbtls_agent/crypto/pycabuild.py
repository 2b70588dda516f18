"""The ``cryptography`` backend's X.509 building and request parsing, imported only when used.

``cryptography.x509`` is the slowest import of the agent (about 60 ms on a small node). The
commands every database node runs twice per certificate run need it only to build a request;
``install-certs`` reads and verifies certificates with the DER decoder and the library's key
primitives (``pyca``), so it never loads this module.
"""

import datetime
from typing import Any, Dict, List

from cryptography import x509
from cryptography.hazmat.backends import default_backend
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dbtls_agent.crypto import der
from dbtls_agent.crypto.base import new_serial, profile_for
from dbtls_agent.crypto.names import split_sans
from dbtls_agent.crypto.pycakeys import describe_key, load_key, utcnow
from dbtls_agent.errors import AgentError

_EKU_OIDS = {"serverAuth": ExtendedKeyUsageOID.SERVER_AUTH, "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH}


def _load_cert(cert_pem: bytes) -> x509.Certificate:
    der_bytes = der.single_der(cert_pem, ("CERTIFICATE",))
    try:
        return x509.load_der_x509_certificate(der_bytes, default_backend())
    except ValueError:
        raise AgentError("certificate is not valid") from None


def _general_names(sans: List[str]) -> List[x509.GeneralName]:
    import ipaddress

    dns, ips = split_sans(sans)
    return [x509.DNSName(n) for n in dns] + [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]


def _hash_for(key: Any) -> hashes.HashAlgorithm:
    return hashes.SHA256()


def make_csr(key_pem: bytes, cn: str, sans: List[str], kind: str) -> bytes:
    key = load_key(key_pem)
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(_general_names(sans)), critical=False)
    eku = profile_for(kind, "rsa").eku
    builder = builder.add_extension(x509.ExtendedKeyUsage([_EKU_OIDS[e] for e in eku]), critical=False)
    csr = builder.sign(key, hashes.SHA256(), default_backend())
    return csr.public_bytes(serialization.Encoding.PEM)


def _builder(subject_cn: str, issuer: x509.Name, public_key: Any, days: int) -> x509.CertificateBuilder:
    start = utcnow()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(new_serial())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
    )


def _add_profile(builder: x509.CertificateBuilder, kind: str, public_key: Any) -> x509.CertificateBuilder:
    profile = profile_for(kind, "ec" if isinstance(public_key, ec.EllipticCurvePublicKey) else "rsa")
    usage = set(profile.key_usage)
    builder = builder.add_extension(
        x509.BasicConstraints(ca=profile.is_ca, path_length=profile.path_length), critical=True
    )
    builder = builder.add_extension(
        x509.KeyUsage(
            digital_signature="digitalSignature" in usage,
            content_commitment=False,
            key_encipherment="keyEncipherment" in usage,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign="keyCertSign" in usage,
            crl_sign="cRLSign" in usage,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )
    if profile.eku:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([_EKU_OIDS[e] for e in profile.eku]), critical=False
        )
    return builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)


def create_ca(key_pem: bytes, cn: str, days: int) -> bytes:
    key = load_key(key_pem)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = _add_profile(_builder(cn, name, key.public_key(), days), "ca", key.public_key())
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
    )
    cert = builder.sign(key, _hash_for(key), default_backend())
    return cert.public_bytes(serialization.Encoding.PEM)


def sign_csr(
    csr_pem: bytes, ca_cert_pem: bytes, ca_key_pem: bytes, kind: str, cn: str, sans: List[str], days: int
) -> bytes:
    csr = x509.load_der_x509_csr(der.single_der(csr_pem, ("CERTIFICATE REQUEST",)), default_backend())
    ca_cert = _load_cert(ca_cert_pem)
    ca_key = load_key(ca_key_pem)
    builder = _builder(cn, ca_cert.subject, csr.public_key(), days)
    builder = _add_profile(builder, kind, csr.public_key())
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(_general_names(sans)), critical=False)
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
    )
    cert = builder.sign(ca_key, _hash_for(ca_key), default_backend())
    return cert.public_bytes(serialization.Encoding.PEM)


def parse_csr(csr_pem: bytes) -> Dict[str, Any]:
    try:
        csr = x509.load_der_x509_csr(der.single_der(csr_pem, ("CERTIFICATE REQUEST",)), default_backend())
        info = describe_key(csr.public_key())
        info.update(_describe_extensions(csr.extensions))
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        raise AgentError("certificate request is not valid") from None
    info.update(
        subject=_name_text(csr.subject),
        cn=_cn(csr.subject),
        subject_attributes=len(list(csr.subject)),
        signature_algorithm=der.SIG_ALGS.get(
            csr.signature_algorithm_oid.dotted_string, csr.signature_algorithm_oid.dotted_string
        ),
        signature_valid=bool(csr.is_signature_valid),
    )
    return info


def _name_text(name: x509.Name) -> str:
    rdns = [[(attr.oid.dotted_string, str(attr.value)) for attr in rdn] for rdn in name.rdns]
    return der.format_name(rdns)


def _cn(name: x509.Name) -> Any:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


def _describe_extensions(extensions: x509.Extensions) -> Dict[str, Any]:
    import ipaddress

    out = der.empty_extension_report()
    for ext in extensions:
        name = der.EXTENSIONS.get(ext.oid.dotted_string, ext.oid.dotted_string)
        out["extensions"].append(name)
        if ext.critical:
            out["critical_extensions"].append(name)
        value = ext.value
        if isinstance(value, x509.SubjectAlternativeName):
            for gn in value:
                if isinstance(gn, x509.DNSName):
                    out["sans"].append("DNS:" + gn.value)
                elif isinstance(gn, x509.IPAddress) and not isinstance(gn.value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
                    out["sans"].append("IP:" + gn.value.compressed)
                elif isinstance(gn, x509.RFC822Name):
                    out["sans"].append("email:" + gn.value)
                elif isinstance(gn, x509.UniformResourceIdentifier):
                    out["sans"].append("URI:" + gn.value)
                else:
                    out["sans"].append("other:" + type(gn).__name__)
        elif isinstance(value, x509.BasicConstraints):
            out["is_ca"] = value.ca
            out["path_length"] = value.path_length
        elif isinstance(value, x509.KeyUsage):
            out["key_usage"] = _key_usage_names(value)
        elif isinstance(value, x509.ExtendedKeyUsage):
            out["extended_key_usage"] = [der.EKU_NAMES.get(o.dotted_string, o.dotted_string) for o in value]
        elif isinstance(value, x509.SubjectKeyIdentifier):
            out["subject_key_id"] = value.digest.hex()
        elif isinstance(value, x509.AuthorityKeyIdentifier) and value.key_identifier:
            out["authority_key_id"] = value.key_identifier.hex()
    out["extensions"].sort()
    out["critical_extensions"].sort()
    return out


def _key_usage_names(usage: x509.KeyUsage) -> List[str]:
    flags = [
        ("digitalSignature", usage.digital_signature),
        ("contentCommitment", usage.content_commitment),
        ("keyEncipherment", usage.key_encipherment),
        ("dataEncipherment", usage.data_encipherment),
        ("keyAgreement", usage.key_agreement),
        ("keyCertSign", usage.key_cert_sign),
        ("cRLSign", usage.crl_sign),
    ]
    names = [label for label, on in flags if on]
    if usage.key_agreement:
        names += [label for label, on in (("encipherOnly", usage.encipher_only), ("decipherOnly", usage.decipher_only)) if on]
    return names
