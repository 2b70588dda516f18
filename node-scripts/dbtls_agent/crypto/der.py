"""A small read-only DER/X.509 decoder, so the openssl backend never has to scrape ``-text`` output.

``openssl x509 -text`` changes its layout between 1.0.2 (CentOS 7 nodes), 1.1.1 and 3.x, and
``-ext`` does not exist before 1.1.1. Decoding the few fields we report straight from DER is both
shorter and version-proof. Only what certificates and CSRs made by this add-on (or by common tools)
contain is understood; anything unexpected raises ``DerError`` instead of being guessed at.
"""

import base64
import binascii
import hashlib
import re
from typing import Any, Dict, List, Optional, Tuple

from dbtls_agent.errors import AgentError
from dbtls_agent.vocab import KeySpec


class DerError(AgentError):
    """Input that is not the DER structure we expected (corrupt or not a certificate/CSR)."""


_PEM_RE = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END \1-----", re.DOTALL
)

NAME_ATTRS = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "1.2.840.113549.1.9.1": "emailAddress",
}
SIG_ALGS = {
    "1.2.840.113549.1.1.5": "sha1WithRSAEncryption",
    "1.2.840.113549.1.1.11": "sha256WithRSAEncryption",
    "1.2.840.113549.1.1.12": "sha384WithRSAEncryption",
    "1.2.840.113549.1.1.13": "sha512WithRSAEncryption",
    "1.2.840.113549.1.1.10": "rsassaPss",
    "1.2.840.10045.4.3.2": "ecdsa-with-SHA256",
    "1.2.840.10045.4.3.3": "ecdsa-with-SHA384",
    "1.2.840.10045.4.3.4": "ecdsa-with-SHA512",
    "1.3.101.112": "ED25519",
}
#: The signature algorithms the agent verifies, by OID: (the signer's key kind, the hash's hashlib name).
SIG_SCHEMES = {
    "1.2.840.113549.1.1.11": ("rsa", "sha256"),
    "1.2.840.113549.1.1.12": ("rsa", "sha384"),
    "1.2.840.113549.1.1.13": ("rsa", "sha512"),
    "1.2.840.10045.4.3.2": ("ec", "sha256"),
    "1.2.840.10045.4.3.3": ("ec", "sha384"),
    "1.2.840.10045.4.3.4": ("ec", "sha512"),
}
EXTENSIONS = {
    "2.5.29.14": "subjectKeyIdentifier",
    "2.5.29.15": "keyUsage",
    "2.5.29.17": "subjectAltName",
    "2.5.29.19": "basicConstraints",
    "2.5.29.35": "authorityKeyIdentifier",
    "2.5.29.37": "extendedKeyUsage",
}
EKU_NAMES = {
    "1.3.6.1.5.5.7.3.1": "serverAuth",
    "1.3.6.1.5.5.7.3.2": "clientAuth",
    "1.3.6.1.5.5.7.3.3": "codeSigning",
    "1.3.6.1.5.5.7.3.4": "emailProtection",
    "1.3.6.1.5.5.7.3.8": "timeStamping",
    "1.3.6.1.5.5.7.3.9": "OCSPSigning",
    "2.5.29.37.0": "anyExtendedKeyUsage",
}
KEY_USAGE_BITS = [
    "digitalSignature",
    "contentCommitment",
    "keyEncipherment",
    "dataEncipherment",
    "keyAgreement",
    "keyCertSign",
    "cRLSign",
    "encipherOnly",
    "decipherOnly",
]
EC_CURVES = {"1.2.840.10045.3.1.7": "ecdsa-p256", "1.3.132.0.34": "ecdsa-p384", "1.3.132.0.35": "ecdsa-p521"}
_RSA_OID = "1.2.840.113549.1.1.1"
_EC_OID = "1.2.840.10045.2.1"
_EXT_REQUEST_OID = "1.2.840.113549.1.9.14"

# ---------------------------------------------------------------------------------------------- PEM


def pem_blocks(data: bytes) -> List[Tuple[str, bytes]]:
    """Every PEM block in ``data`` as (label, DER). Text between blocks is ignored."""
    blocks = []
    for match in _PEM_RE.finditer(data):
        try:
            der = base64.b64decode(b"".join(match.group(2).split()), validate=True)
        except (binascii.Error, ValueError):
            raise DerError("malformed base64 in PEM block {}".format(match.group(1).decode())) from None
        blocks.append((match.group(1).decode("ascii"), der))
    return blocks


def text_outside_pem(data: bytes) -> bool:
    """True when ``data`` holds anything but whitespace besides its PEM blocks."""
    return bool(_PEM_RE.sub(b"", data).strip())


def to_pem(label: str, der: bytes) -> bytes:
    """PEM with 64-character lines, the form every server and client accepts."""
    text = base64.b64encode(der)
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    header = "-----BEGIN {}-----\n".format(label).encode("ascii")
    footer = "-----END {}-----\n".format(label).encode("ascii")
    return header + b"\n".join(lines) + b"\n" + footer


def single_der(pem: bytes, labels: Tuple[str, ...]) -> bytes:
    """The DER of the one PEM block with one of ``labels``; error if there is not exactly one."""
    found = [der for label, der in pem_blocks(pem) if label in labels]
    if len(found) != 1:
        raise DerError("expected exactly one {} PEM block, found {}".format(" or ".join(labels), len(found)))
    return found[0]


def fingerprint(der: bytes) -> str:
    """SHA-256 fingerprint in the ``AB:CD:...`` form ``openssl x509 -fingerprint`` prints."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


# ---------------------------------------------------------------------------------------------- DER


class _Node:
    """One decoded TLV: tag byte, content bytes and the full encoding (for hashing sub-structures)."""

    __slots__ = ("tag", "content", "raw")

    def __init__(self, tag: int, content: bytes, raw: bytes) -> None:
        self.tag = tag
        self.content = content
        self.raw = raw

    def children(self) -> List["_Node"]:
        return _parse_all(self.content)


def _parse_one(data: bytes, pos: int) -> Tuple[_Node, int]:
    if pos + 2 > len(data):
        raise DerError("truncated DER")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise DerError("unsupported multi-byte DER tag")
    length = data[pos + 1]
    offset = pos + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or offset + count > len(data):
            raise DerError("bad DER length")
        length = int.from_bytes(data[offset:offset + count], "big")
        offset += count
    end = offset + length
    if end > len(data):
        raise DerError("truncated DER")
    return _Node(tag, data[offset:end], data[pos:end]), end


def _parse_all(data: bytes) -> List[_Node]:
    nodes = []
    pos = 0
    while pos < len(data):
        node, pos = _parse_one(data, pos)
        nodes.append(node)
    return nodes


def _root(der: bytes) -> _Node:
    node, end = _parse_one(der, 0)
    if end != len(der) or node.tag != 0x30:
        raise DerError("not a DER SEQUENCE")
    return node


def _oid(node: _Node) -> str:
    if node.tag != 0x06 or not node.content:
        raise DerError("expected an OBJECT IDENTIFIER")
    first = node.content[0]
    parts = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    value = 0
    for byte in node.content[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


def _int(node: _Node) -> int:
    if node.tag != 0x02:
        raise DerError("expected an INTEGER")
    return int.from_bytes(node.content, "big", signed=True)


def _bitstring(node: _Node) -> bytes:
    if node.tag != 0x03 or not node.content:
        raise DerError("expected a BIT STRING")
    return node.content[1:]


def _text(node: _Node) -> str:
    if node.tag == 0x1E:  # BMPString
        return node.content.decode("utf-16-be", "replace")
    return node.content.decode("utf-8", "replace")


def format_name(rdns: List[List[Tuple[str, str]]]) -> str:
    """``CN=a, O=b`` in encoding order; shared with the cryptography backend so both agree."""
    parts = []
    for rdn in rdns:
        parts.append("+".join("{}={}".format(NAME_ATTRS.get(oid, oid), value) for oid, value in rdn))
    return ", ".join(parts)


def _name(node: _Node) -> Dict[str, Any]:
    rdns = []
    for rdn_set in node.children():
        rdn = []
        for atv in rdn_set.children():
            oid_node, value_node = atv.children()[:2]
            rdn.append((_oid(oid_node), _text(value_node)))
        rdns.append(rdn)
    cns = [value for rdn in rdns for oid, value in rdn if oid == "2.5.4.3"]
    return {"text": format_name(rdns), "cn": cns[0] if cns else None, "attributes": len([a for r in rdns for a in r])}


def _time(node: _Node) -> str:
    text = node.content.decode("ascii")
    if node.tag == 0x17:  # UTCTime: YYMMDDHHMMSSZ, years 1950-2049
        year = int(text[:2])
        text = ("19" if year >= 50 else "20") + text
    elif node.tag != 0x18:
        raise DerError("expected a time value")
    if not re.match(r"^\d{14}Z$", text):
        raise DerError("unsupported time format {!r}".format(text))
    return "{}-{}-{}T{}:{}:{}Z".format(text[0:4], text[4:6], text[6:8], text[8:10], text[10:12], text[12:14])


def _spki(node: _Node) -> Dict[str, Any]:
    alg_node, key_node = node.children()[:2]
    alg = alg_node.children()
    alg_oid = _oid(alg[0])
    info = {"spki_sha256": hashlib.sha256(node.raw).hexdigest()}  # type: Dict[str, Any]
    if alg_oid == _RSA_OID:
        modulus = _int(_root(_bitstring(key_node)).children()[0])
        info.update(key_type="rsa{}".format(modulus.bit_length()), key_bits=modulus.bit_length())
    elif alg_oid == _EC_OID:
        curve = _oid(alg[1]) if len(alg) > 1 and alg[1].tag == 0x06 else "explicit"
        key_type = EC_CURVES.get(curve, "ec-" + curve)
        info.update(key_type=key_type, key_bits=KeySpec.of(key_type).bits or 0)
    elif alg_oid == "1.3.101.112":
        info.update(key_type="ed25519", key_bits=256)
    else:
        info.update(key_type="unknown-" + alg_oid, key_bits=0)
    return info


def _general_names(data: bytes) -> List[str]:
    names = []
    for gn in _root(data).children():
        if gn.tag == 0x82:
            names.append("DNS:" + gn.content.decode("ascii", "replace"))
        elif gn.tag == 0x87:
            names.append("IP:" + _ip_text(gn.content))
        elif gn.tag == 0x81:
            names.append("email:" + gn.content.decode("ascii", "replace"))
        elif gn.tag == 0x86:
            names.append("URI:" + gn.content.decode("ascii", "replace"))
        else:
            names.append("other:{:#x}".format(gn.tag))
    return names


def _ip_text(raw: bytes) -> str:
    import ipaddress

    if len(raw) in (4, 16):
        return ipaddress.ip_address(raw).compressed
    return "invalid-" + raw.hex()


def empty_extension_report() -> Dict[str, Any]:
    """The extension fields both backends report, before any extension is read."""
    return {
        "extensions": [],
        "critical_extensions": [],
        "sans": [],
        "is_ca": False,
        "path_length": None,
        "key_usage": [],
        "extended_key_usage": [],
        "subject_key_id": None,
        "authority_key_id": None,
    }


def _extensions(nodes: List[_Node]) -> Dict[str, Any]:
    """Decode the extensions we report; unknown ones are only listed by OID."""
    out = empty_extension_report()
    for ext in nodes:
        parts = ext.children()
        oid = _oid(parts[0])
        critical = len(parts) == 3 and parts[1].tag == 0x01 and parts[1].content != b"\x00"
        value = parts[-1].content
        name = EXTENSIONS.get(oid, oid)
        out["extensions"].append(name)
        if critical:
            out["critical_extensions"].append(name)
        if name == "subjectAltName":
            out["sans"] = _general_names(value)
        elif name == "basicConstraints":
            for item in _root(value).children():
                if item.tag == 0x01:
                    out["is_ca"] = item.content != b"\x00"
                elif item.tag == 0x02:
                    out["path_length"] = _int(item)
        elif name == "keyUsage":
            bits = _bitstring(_parse_one(value, 0)[0])
            out["key_usage"] = [
                label for i, label in enumerate(KEY_USAGE_BITS) if i // 8 < len(bits) and bits[i // 8] & (0x80 >> (i % 8))
            ]
        elif name == "extendedKeyUsage":
            out["extended_key_usage"] = [EKU_NAMES.get(o, o) for o in (_oid(n) for n in _root(value).children())]
        elif name == "subjectKeyIdentifier":
            out["subject_key_id"] = _parse_one(value, 0)[0].content.hex()
        elif name == "authorityKeyIdentifier":
            for item in _root(value).children():
                if item.tag == 0x80:
                    out["authority_key_id"] = item.content.hex()
    out["extensions"].sort()
    out["critical_extensions"].sort()
    return out


def parse_certificate(der: bytes) -> Dict[str, Any]:
    """The certificate fields we report, as a plain dict (same keys as the cryptography backend)."""
    try:
        cert = _root(der).children()
        tbs = cert[0].children()
        index = 1 if tbs[0].tag == 0xA0 else 0
        version = _int(tbs[0].children()[0]) + 1 if index else 1
        serial = _int(tbs[index])
        issuer = _name(tbs[index + 2])
        validity = tbs[index + 3].children()
        subject = _name(tbs[index + 4])
        info = _spki(tbs[index + 5])
        ext_nodes = []  # type: List[_Node]
        for extra in tbs[index + 6:]:
            if extra.tag == 0xA3:
                ext_nodes = extra.children()[0].children()
        info.update(_extensions(ext_nodes))
        info.update(
            version=version,
            serial=format(serial, "x"),
            serial_bytes=len(tbs[index].content),
            subject=subject["text"],
            cn=subject["cn"],
            issuer=issuer["text"],
            issuer_cn=issuer["cn"],
            not_before=_time(validity[0]),
            not_after=_time(validity[1]),
            signature_algorithm=SIG_ALGS.get(_oid(cert[1].children()[0]), _oid(cert[1].children()[0])),
            sha256=fingerprint(der),
        )
        return info
    except (DerError, IndexError, ValueError, UnicodeDecodeError) as exc:
        raise DerError("certificate is not valid DER ({})".format(exc or type(exc).__name__)) from None


def signed_parts(der: bytes) -> Dict[str, Any]:
    """What a signature check needs from a certificate, as DER bytes.

    ``tbs`` (the signed bytes), ``signature_oid``, ``signature``, the ``issuer`` and ``subject``
    names and the ``spki`` exactly as encoded, so names compare byte for byte and a CA's public key
    loads straight from its certificate.
    """
    try:
        cert = _root(der).children()
        tbs = cert[0].children()
        index = 1 if tbs[0].tag == 0xA0 else 0
        if cert[0].tag != 0x30 or tbs[index + 2].tag != 0x30 or tbs[index + 4].tag != 0x30:
            raise DerError("not a certificate")
        return {
            "tbs": cert[0].raw,
            "signature_oid": _oid(cert[1].children()[0]),
            "signature": _bitstring(cert[2]),
            "issuer": tbs[index + 2].raw,
            "subject": tbs[index + 4].raw,
            "spki": tbs[index + 5].raw,
        }
    except (DerError, IndexError, ValueError) as exc:
        raise DerError("certificate is not valid DER ({})".format(exc or type(exc).__name__)) from None


def parse_csr(der: bytes) -> Dict[str, Any]:
    """The CSR fields the CA checks before signing; requested extensions come from extensionRequest."""
    try:
        csr = _root(der).children()
        info_parts = csr[0].children()
        subject = _name(info_parts[1])
        info = _spki(info_parts[2])
        ext_nodes = []  # type: List[_Node]
        for extra in info_parts[3:]:
            if extra.tag != 0xA0:
                continue
            for attr in extra.children():
                attr_parts = attr.children()
                if _oid(attr_parts[0]) == _EXT_REQUEST_OID:
                    ext_nodes = attr_parts[1].children()[0].children()
        info.update(_extensions(ext_nodes))
        info.update(
            subject=subject["text"],
            cn=subject["cn"],
            subject_attributes=subject["attributes"],
            signature_algorithm=SIG_ALGS.get(_oid(csr[1].children()[0]), _oid(csr[1].children()[0])),
        )
        return info
    except (DerError, IndexError, ValueError, UnicodeDecodeError) as exc:
        raise DerError("certificate request is not valid DER ({})".format(exc or type(exc).__name__)) from None


def rsa_public_numbers(spki_der: bytes) -> Optional[Tuple[int, int]]:
    """``(n, e)`` of an RSA SubjectPublicKeyInfo, or None when the key is not RSA."""
    try:
        alg_node, key_node = _root(spki_der).children()[:2]
        if _oid(alg_node.children()[0]) != _RSA_OID:
            return None
        modulus, exponent = _root(_bitstring(key_node)).children()[:2]
        return _int(modulus), _int(exponent)
    except (IndexError, ValueError):
        raise DerError("public key is not valid DER") from None


def parse_spki(spki_der: bytes) -> Dict[str, Any]:
    """Key type, size and ``spki_sha256`` of a bare SubjectPublicKeyInfo (``openssl pkey -pubout``)."""
    try:
        return _spki(_root(spki_der))
    except (IndexError, ValueError):
        raise DerError("public key is not valid DER") from None


# ------------------------------------------------------------------------------- private keys

_KEY_LABELS = ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY")


def _tlv(tag: int, content: bytes) -> bytes:
    """One DER TLV (definite length, as DER requires)."""
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def _der_int(value: int) -> bytes:
    """A non-negative INTEGER in its minimal DER form (a leading zero keeps the sign bit clear)."""
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _rsa_spki(rsa_private: _Node) -> bytes:
    """SPKI of a PKCS#1 RSAPrivateKey (version, n, e, ...): rsaEncryption with NULL parameters."""
    parts = rsa_private.children()
    if _int(parts[0]) != 0:
        raise DerError("unsupported RSA private key version")
    public = _tlv(0x30, _der_int(_int(parts[1])) + _der_int(_int(parts[2])))
    algorithm = _tlv(0x30, _tlv(0x06, bytes.fromhex("2a864886f70d010101")) + b"\x05\x00")
    return _tlv(0x30, algorithm + _tlv(0x03, b"\x00" + public))


def _ec_spki(algorithm: bytes, ec_private: _Node) -> Optional[bytes]:
    """SPKI of a SEC1 ECPrivateKey, or None when it does not carry its public point ([1])."""
    for part in ec_private.children()[2:]:
        if part.tag == 0xA1:
            return _tlv(0x30, algorithm + part.children()[0].raw)
    return None


def private_key_spki(key_pem: bytes) -> Optional[bytes]:
    """The SubjectPublicKeyInfo DER of an unencrypted RSA or EC private key, read from its DER.

    Matching certificates to keys needs only the public half, and loading a private key through a
    crypto library costs an RSA consistency check (tens of milliseconds with OpenSSL 3 per key) that
    ``install-certs`` would pay for every key on the node. The key is checked where it is used, when
    a request is signed with it. None means a form this decoder does not read (encrypted, another
    algorithm, an EC key without its public point): the caller asks the crypto backend instead.
    """
    try:
        blocks = [(label, body) for label, body in pem_blocks(key_pem) if label in _KEY_LABELS]
        if len(blocks) != 1:
            return None
        label, body = blocks[0]
        parts = _root(body).children()
        if label == "RSA PRIVATE KEY":
            return _rsa_spki(_root(body))
        if label == "EC PRIVATE KEY":
            curve = [p for p in parts[2:] if p.tag == 0xA0]
            if not curve:
                return None
            algorithm = _tlv(0x30, _tlv(0x06, bytes.fromhex("2a8648ce3d0201")) + curve[0].children()[0].raw)
            return _ec_spki(algorithm, _root(body))
        if _int(parts[0]) not in (0, 1) or parts[2].tag != 0x04:  # PKCS#8 PrivateKeyInfo / OneAsymmetricKey
            return None
        oid = _oid(parts[1].children()[0])
        if oid == _RSA_OID:
            return _rsa_spki(_root(parts[2].content))
        if oid == _EC_OID:
            return _ec_spki(parts[1].raw, _root(parts[2].content))
        return None
    except (DerError, IndexError, ValueError):
        return None


def pem_sha256(pem: bytes) -> str:
    """SHA-256 (lower-case hex) of the first certificate in ``pem``: what a handshake must show."""
    blocks = [der for label, der in pem_blocks(pem) if label == "CERTIFICATE"]
    if not blocks:
        raise AgentError("no certificate found in the PEM data")
    return hashlib.sha256(blocks[0]).hexdigest()
