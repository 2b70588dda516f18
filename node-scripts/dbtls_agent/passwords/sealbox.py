"""Sealed boxes: passwords that cross nodes travel encrypted to a one-run key of the node using them.

The platform records every ``cmd`` script and its output, so anything a manifest moves from one node
to another through ``${response.out}`` ends up in that transcript. Passwords therefore move sealed:

1. the node that will use them makes an ephemeral RSA key (``recipient``; private half 0600 in the
   agent's state directory) and prints only the public half;
2. every node that knows passwords seals its own to that public key (a one-line blob);
3. the recipient's agent opens the blobs inside its own process and deletes the private key.

Blob, ``dbtls-sealed-1:`` + base64 of::

    sha256(recipient SubjectPublicKeyInfo DER)  32 bytes
    len(wrapped)                                 2 bytes, big endian
    wrapped = RSA-OAEP(SHA-256, MGF1-SHA-256)(64 random bytes)
    body    = "Salted__" salt(8) AES-256-CBC(PKCS#7) ciphertext      (the ``openssl enc`` format)
    tag     = HMAC-SHA-256(second 32 random bytes, everything above)  32 bytes

The AES key and IV are derived from the first 32 random bytes (hex, as a passphrase) with
``EVP_BytesToKey(SHA-256, 1 round)``, which is what ``openssl enc -md sha256 -pass file:`` does on
every openssl from 1.0.2 on; one round is enough for a 256-bit random passphrase. The MAC is checked
before anything is decrypted (encrypt-then-MAC). Both backends produce and read the same blobs:
``cryptography`` when it is importable, else the ``openssl`` command, which gets every key,
passphrase and plaintext through 0600 files in a private directory or through stdin, never argv.
"""

import base64
import hashlib
import hmac
import os
import re
import shutil
import struct
import subprocess
from typing import Any, Callable, List, Optional, Tuple

from dbtls_agent import fsio
from dbtls_agent.errors import AgentError

PREFIX = "dbtls-sealed-1:"
RSA_BITS = 3072
_MAGIC = b"Salted__"
_TAG_LEN = 32
_FP_LEN = 32

#: ``runner(argv, stdin) -> (exit code, stdout, stderr)``; tests pass a recording fake.
Runner = Callable[[List[str], bytes], Tuple[int, bytes, bytes]]


class SealError(AgentError):
    """A blob that cannot be opened: wrong key, altered, or not a blob at all."""


def spki_sha256(public_pem: bytes) -> bytes:
    """SHA-256 of the DER inside a ``PUBLIC KEY`` PEM block (identifies the recipient key)."""
    text = public_pem.decode("ascii", "replace")
    begin, end = "-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----"
    if begin not in text or end not in text.split(begin, 1)[1]:
        raise SealError("sealed secrets: expected a PEM 'PUBLIC KEY' block from 'secrets recipient'")
    body = text.split(begin, 1)[1].split(end, 1)[0]
    try:
        der = base64.b64decode("".join(body.split()), validate=True)
    except ValueError:
        raise SealError("sealed secrets: the recipient public key is not valid base64") from None
    return hashlib.sha256(der).digest()


def evp_bytes_to_key(passphrase: bytes, salt: bytes) -> Tuple[bytes, bytes]:
    """AES-256 key and IV as ``openssl enc -md sha256`` derives them (EVP_BytesToKey, 1 round)."""
    derived, block = b"", b""
    while len(derived) < 48:
        block = hashlib.sha256(block + passphrase + salt).digest()
        derived += block
    return derived[:32], derived[32:48]




class CryptographySealer(object):
    """Primitives on the ``cryptography`` package."""

    name = "cryptography"

    def __init__(self) -> None:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        self._oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)

    def generate_private_key(self) -> bytes:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    def _private(self, key_path: str) -> Any:
        from cryptography.hazmat.primitives import serialization

        with open(key_path, "rb") as handle:
            return serialization.load_pem_private_key(handle.read(), password=None)

    def public_pem(self, key_path: str) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self._private(key_path).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def wrap(self, public_pem: bytes, secret: bytes) -> bytes:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        try:
            key = serialization.load_pem_public_key(public_pem)
        except ValueError:
            raise SealError("sealed secrets: the recipient public key cannot be read") from None
        if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
            raise SealError("sealed secrets: the recipient key must be RSA of 2048 bits or more")
        return key.encrypt(secret, self._oaep)

    def unwrap(self, key_path: str, wrapped: bytes) -> bytes:
        try:
            return self._private(key_path).decrypt(wrapped, self._oaep)
        except ValueError:
            raise SealError("sealed secrets: the blob's key cannot be unwrapped with this node's key "
                            "(altered, or sealed to another key)") from None

    def encrypt(self, passphrase: bytes, plaintext: bytes) -> bytes:
        from cryptography.hazmat.primitives import padding as sympad
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        salt = os.urandom(8)
        key, iv = evp_bytes_to_key(passphrase, salt)
        padder = sympad.PKCS7(128).padder()
        padded = padder.update(plaintext) + padder.finalize()
        enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        return _MAGIC + salt + enc.update(padded) + enc.finalize()

    def decrypt(self, passphrase: bytes, body: bytes) -> bytes:
        from cryptography.hazmat.primitives import padding as sympad
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        if not body.startswith(_MAGIC) or len(body) < 32 or (len(body) - 16) % 16:
            raise SealError("sealed secrets: the blob's body is malformed")
        key, iv = evp_bytes_to_key(passphrase, body[8:16])
        dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        padded = dec.update(body[16:]) + dec.finalize()
        try:
            unpadder = sympad.PKCS7(128).unpadder()
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise SealError("sealed secrets: the blob's body does not decrypt") from None


def _run_openssl(argv: List[str], stdin: bytes) -> Tuple[int, bytes, bytes]:
    proc = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return proc.returncode, proc.stdout, proc.stderr


class OpensslSealer(object):
    """Primitives on the ``openssl`` command (1.0.2 or newer): inputs by 0600 file or stdin only."""

    name = "openssl"
    _OAEP = ["-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256"]

    def __init__(self, runner: Optional[Runner] = None, binary: Optional[str] = None) -> None:
        self.binary = binary or shutil.which("openssl") or ""
        if not self.binary:
            raise AgentError("sealed secrets need the python 'cryptography' package or the 'openssl' command")
        self.runner = runner or _run_openssl

    def _run(self, args: List[str], stdin: bytes = b"", error: Optional[str] = None) -> bytes:
        code, out, err = self.runner([self.binary] + args, stdin)
        if code != 0:
            if error:
                raise SealError(error)
            lines = [ln for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()]
            raise AgentError("openssl {} failed: {}".format(args[0], lines[-1] if lines else "exit {}".format(code)))
        return out

    def generate_private_key(self) -> bytes:
        return self._run(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:{}".format(RSA_BITS)])

    def public_pem(self, key_path: str) -> bytes:
        return self._run(["pkey", "-in", key_path, "-pubout"])

    def wrap(self, public_pem: bytes, secret: bytes) -> bytes:
        with fsio.PrivateDir("dbtls-seal-") as work:
            pub = work.file("recipient.pub", public_pem)
            text = self._run(["pkey", "-pubin", "-in", pub, "-noout", "-text"],
                             error="sealed secrets: the recipient public key cannot be read").decode("ascii", "replace")
            bits = re.search(r"\((\d+) bit\)", text)
            if "Modulus" not in text or not bits or int(bits.group(1)) < 2048:
                raise SealError("sealed secrets: the recipient key must be RSA of 2048 bits or more")
            src = work.file("secret.bin", secret)
            out = os.path.join(work.path, "wrapped.bin")
            self._run(["pkeyutl", "-encrypt", "-pubin", "-inkey", pub] + self._OAEP + ["-in", src, "-out", out])
            with open(out, "rb") as handle:
                return handle.read()

    def unwrap(self, key_path: str, wrapped: bytes) -> bytes:
        with fsio.PrivateDir("dbtls-seal-") as work:
            src = work.file("wrapped.bin", wrapped)
            out = work.file("secret.bin")
            self._run(["pkeyutl", "-decrypt", "-inkey", key_path] + self._OAEP + ["-in", src, "-out", out],
                      error="sealed secrets: the blob's key cannot be unwrapped with this node's key "
                            "(altered, or sealed to another key)")
            with open(out, "rb") as handle:
                return handle.read()

    def encrypt(self, passphrase: bytes, plaintext: bytes) -> bytes:
        with fsio.PrivateDir("dbtls-seal-") as work:
            pass_file = work.file("pass", passphrase + b"\n")
            return self._run(["enc", "-aes-256-cbc", "-md", "sha256", "-pass", "file:" + pass_file], plaintext)

    def decrypt(self, passphrase: bytes, body: bytes) -> bytes:
        if not body.startswith(_MAGIC) or len(body) < 32 or (len(body) - 16) % 16:
            raise SealError("sealed secrets: the blob's body is malformed")
        with fsio.PrivateDir("dbtls-seal-") as work:
            pass_file = work.file("pass", passphrase + b"\n")
            return self._run(["enc", "-d", "-aes-256-cbc", "-md", "sha256", "-pass", "file:" + pass_file], body,
                             error="sealed secrets: the blob's body does not decrypt")


def get_sealer(name: Optional[str] = None, runner: Optional[Runner] = None) -> Any:
    """``cryptography`` when usable (or asked for), else ``openssl``; DBTLS_CRYPTO_BACKEND forces one."""
    from dbtls_agent.crypto import BACKENDS, _cryptography_usable

    choice = name or os.environ.get("DBTLS_CRYPTO_BACKEND") or ""
    if choice not in ("",) + BACKENDS:
        raise AgentError("unknown crypto backend {!r} (choose {})".format(choice, " or ".join(BACKENDS)))
    if choice == "cryptography" or (not choice and _cryptography_usable()):
        if not _cryptography_usable():
            raise AgentError("crypto backend 'cryptography' requested but the package is not importable")
        return CryptographySealer()
    return OpensslSealer(runner=runner)


def seal(sealer: Any, public_pem: bytes, plaintext: bytes) -> str:
    """One blob line holding ``plaintext`` for the owner of ``public_pem``."""
    fingerprint = spki_sha256(public_pem)
    secret = os.urandom(64)
    wrapped = sealer.wrap(public_pem, secret)
    body = sealer.encrypt(base64.b16encode(secret[:32]).lower(), plaintext)
    signed = fingerprint + struct.pack(">H", len(wrapped)) + wrapped + body
    tag = hmac.new(secret[32:], PREFIX.encode("ascii") + signed, hashlib.sha256).digest()
    return PREFIX + base64.b64encode(signed + tag).decode("ascii")


def open_blob(sealer: Any, key_path: str, public_pem: bytes, blob: str) -> bytes:
    """The plaintext of ``blob``, which must have been sealed to the key at ``key_path``."""
    blob = blob.strip()
    if not blob.startswith(PREFIX):
        raise SealError("sealed secrets: input is not a sealed blob (expected a line starting {!r})".format(PREFIX))
    try:
        raw = base64.b64decode(blob[len(PREFIX):], validate=True)
    except ValueError:
        raise SealError("sealed secrets: the blob is not valid base64 (truncated or altered)") from None
    if len(raw) < _FP_LEN + 2 + _TAG_LEN:
        raise SealError("sealed secrets: the blob is too short (truncated)")
    fingerprint, (size,) = raw[:_FP_LEN], struct.unpack(">H", raw[_FP_LEN:_FP_LEN + 2])
    if not hmac.compare_digest(fingerprint, spki_sha256(public_pem)):
        raise SealError("sealed secrets: the blob was sealed to another key, not this node's recipient key")
    signed, tag = raw[:-_TAG_LEN], raw[-_TAG_LEN:]
    wrapped, body = signed[_FP_LEN + 2:_FP_LEN + 2 + size], signed[_FP_LEN + 2 + size:]
    if len(wrapped) != size or not body:
        raise SealError("sealed secrets: the blob is truncated")
    secret = sealer.unwrap(key_path, wrapped)
    if len(secret) != 64:
        raise SealError("sealed secrets: the blob's key has the wrong size (altered)")
    expected = hmac.new(secret[32:], PREFIX.encode("ascii") + signed, hashlib.sha256).digest()
    if not hmac.compare_digest(tag, expected):
        raise SealError("sealed secrets: the blob was altered (authentication failed)")
    return sealer.decrypt(base64.b16encode(secret[:32]).lower(), body)
