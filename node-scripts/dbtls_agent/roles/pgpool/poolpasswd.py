"""Pgpool-II ``pool_passwd``: parse, edit, and make or read its AES entries natively.

Why native: ``pg_enc`` needs the password on its command line or in a file, and the agent must never
put a secret on argv (``/proc/<pid>/cmdline`` is world-readable). Writing the entry ourselves also
works on nodes where the Pgpool tools are not in PATH.

The AES format (Pgpool's src/utils/ssl_utils.c): key and IV come from OpenSSL's
``EVP_BytesToKey(aes-256-cbc, sha1, no salt, one round)`` over the pgpool key; the password is
AES-256-CBC encrypted with PKCS#7 padding, base64-encoded and prefixed with ``AES``. There is no
per-entry salt, so the same key and password always give the same entry, which keeps writes
idempotent. ``cryptography`` does the AES when importable; otherwise :mod:`dbtls_agent.roles.pgpool.aes`.
"""

import base64
import binascii
import hashlib
import re
import secrets
from typing import List, NamedTuple, Optional, Tuple, Union

from dbtls_agent.errors import AgentError
from dbtls_agent.roles.pgpool import aes
from dbtls_agent.roles.postgres.conf import detect_eol, join_lines, split_lines

# A longer password makes an AES entry longer than Pgpool's 128-character token buffer; the entry is
# silently truncated and every login fails with "unable to decrypt password from pool_passwd".
MAX_AES_PASSWORD_BYTES = 79
WELL_KNOWN_KEYS = ("defaultpgpoolkey",)

MD5, AES, SCRAM, TEXT, PLAIN = "md5", "aes", "scram", "text", "plain"

PoolPasswdEntry = NamedTuple("PoolPasswdEntry", [
    ("lineno", int),
    ("user", str),
    ("secret", str),
    ("kind", str),            # one of MD5, AES, SCRAM, TEXT, PLAIN
    ("rest", str),            # ":backenduser:backendsecret" mapping suffix, or ""
])

_MD5_SECRET = re.compile(r"md5[0-9a-f]{32}$")


# --- pool_passwd text -------------------------------------------------------------------------------

def secret_kind(secret: str) -> str:
    """Classify a secret the way Pgpool does, by prefix (src/auth/pool_passwd.c)."""
    if secret.startswith("md5"):
        return MD5 if _MD5_SECRET.match(secret) else PLAIN  # wrong length: Pgpool treats it as text
    if secret.startswith("AES"):
        return AES
    if secret.startswith("SCRAM-SHA-256$"):
        return SCRAM
    if secret.startswith("TEXT"):
        return TEXT
    return PLAIN


def split_user(content: str) -> Optional[Tuple[str, str]]:
    """(user, remainder) split at the first colon not escaped by a backslash; None without one."""
    user = []
    i = 0
    while i < len(content):
        char = content[i]
        if char == "\\" and content[i + 1:i + 2] == ":":
            user.append(":")
            i += 2
            continue
        if char == ":":
            return "".join(user), content[i + 1:]
        user.append(char)
        i += 1
    return None


def _split_user(content: str) -> Tuple[str, str]:
    """Like split_user, but a line without a colon is a ValueError."""
    found = split_user(content)
    if found is None:
        raise ValueError("no colon")
    return found


def _escape_user(user: str) -> str:
    return user.replace(":", "\\:")


def parse_pool_passwd(text: str, source: str = "pool_passwd") -> List[PoolPasswdEntry]:
    """Every ``user:secret`` line; blank lines are skipped, other lines refused with their number."""
    if "\x00" in text:
        raise AgentError("{}: contains NUL bytes; this is not a pool_passwd file".format(source))
    entries = []
    for index, (content, _end) in enumerate(split_lines(text)):
        if not content.strip():
            continue
        try:
            user, remainder = _split_user(content)
        except ValueError:
            raise AgentError("{} line {}: expected user:secret".format(source, index + 1)) from None
        if not user:
            raise AgentError("{} line {}: empty user name".format(source, index + 1))
        # Only AES and md5 secrets are known not to contain ':'; with a mapping suffix the secret
        # ends at the next colon.
        secret, sep, rest = remainder.partition(":")
        if secret_kind(secret) not in (AES, MD5):
            secret, sep, rest = remainder, "", ""
        entries.append(PoolPasswdEntry(index + 1, user, secret, secret_kind(secret), sep + rest))
    return entries


def get_entry(text: str, user: str, source: str = "pool_passwd") -> Optional[PoolPasswdEntry]:
    """The entry Pgpool would use for ``user``: the first one in the file."""
    for entry in parse_pool_passwd(text, source):
        if entry.user == user:
            return entry
    return None


def set_entry(text: str, user: str, secret: str, source: str = "pool_passwd") -> str:
    """Set ``user``'s secret, keeping every other line and any backend mapping suffix.

    The first line for the user is replaced (Pgpool reads the first match); without one a line is
    appended. Setting the same secret again returns the text unchanged.
    """
    if not user or any(c in user for c in "\n\r\x00"):
        raise AgentError("{}: invalid user name {!r}".format(source, user))
    if any(c in secret for c in "\n\r\x00"):
        raise AgentError("{}: the secret for {} contains a line break".format(source, user))
    existing = get_entry(text, user, source)
    lines = split_lines(text)
    if existing is not None:
        end = lines[existing.lineno - 1][1]
        lines[existing.lineno - 1] = ("{}:{}{}".format(_escape_user(user), secret, existing.rest), end)
        return join_lines(lines)
    eol = detect_eol(lines)
    if lines and not lines[-1][1]:
        lines[-1] = (lines[-1][0], eol)
    lines.append(("{}:{}".format(_escape_user(user), secret), eol))
    return join_lines(lines)


def remove_entry(text: str, user: str, source: str = "pool_passwd") -> str:
    """Drop every line for ``user`` (used when the add-on removes the entries it created)."""
    lines = split_lines(text)
    drop = {e.lineno for e in parse_pool_passwd(text, source) if e.user == user}
    kept = [line for index, line in enumerate(lines) if index + 1 not in drop]
    if kept and not lines[-1][1] and len(lines) in drop:
        # The removed line was the unterminated last one, so the new last line loses its newline.
        kept[-1] = (kept[-1][0], "")
    return join_lines(kept)


# --- secrets ------------------------------------------------------------------------------------------

def md5_secret(user: str, password: str) -> str:
    """PostgreSQL's and Pgpool's md5 secret: 'md5' + hex md5 of password followed by user name."""
    digest = hashlib.md5((password + user).encode("utf-8"))  # md5 is what the format requires
    return "md5" + digest.hexdigest()


def key_from_file_text(text: Union[str, bytes]) -> bytes:
    """The key as Pgpool reads ``.pgpoolkey``: first line only, one ``\\n`` stripped, ``\\r`` kept."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    first = data.split(b"\n", 1)[0]
    if not first:
        raise AgentError("the pgpool key file is empty")
    return first


def generate_pgpool_key() -> str:
    """A new random key: 32 random bytes as 43 URL-safe characters (one line, no quoting issues)."""
    key = secrets.token_urlsafe(32)
    assert key not in WELL_KNOWN_KEYS
    return key


def is_weak_key(key: Union[str, bytes]) -> bool:
    """True for the public default key the platform writes, or a key too short to matter."""
    raw = key.encode("utf-8") if isinstance(key, str) else key
    return raw.decode("utf-8", "replace") in WELL_KNOWN_KEYS or len(raw) < 16


def derive_key_iv(passphrase: bytes) -> Tuple[bytes, bytes]:
    """OpenSSL EVP_BytesToKey with SHA-1, no salt and one round: 32-byte key, 16-byte IV."""
    material = b""
    block = b""
    while len(material) < 48:
        block = hashlib.sha1(block + passphrase).digest()
        material += block
    return material[:32], material[32:48]


def _cryptography_cipher() -> Optional[tuple]:
    """The ``cryptography`` classes, or None when the package is missing or too broken to import."""
    try:
        from cryptography.hazmat.backends import default_backend
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    except Exception:  # any import failure (missing, or a broken old build) means: use pure Python
        return None
    return Cipher, algorithms, modes, default_backend


def _cbc(encrypt: bool, key: bytes, iv: bytes, data: bytes, backend: Optional[str]) -> bytes:
    parts = None if backend == "pure" else _cryptography_cipher()
    if parts is None:
        if backend == "cryptography":
            raise AgentError("the cryptography package is not available on this node")
        return aes.cbc_encrypt(key, iv, data) if encrypt else aes.cbc_decrypt(key, iv, data)
    cipher_cls, algorithms, modes, default_backend = parts
    # default_backend() keeps old cryptography releases (< 3.1, common on CentOS 7) working.
    cipher = cipher_cls(algorithms.AES(key), modes.CBC(iv), default_backend())
    if encrypt:
        worker = cipher.encryptor()
        return worker.update(aes.pkcs7_pad(data)) + worker.finalize()
    if not data or len(data) % aes.BLOCK_SIZE:
        raise ValueError("ciphertext is not a whole number of AES blocks")
    worker = cipher.decryptor()
    return aes.pkcs7_unpad(worker.update(data) + worker.finalize())


def _key_bytes(key: Union[str, bytes]) -> bytes:
    raw = key.encode("utf-8") if isinstance(key, str) else key
    if not raw:
        raise AgentError("the pgpool key is empty")
    return raw


def encrypt_password(password: str, key: Union[str, bytes], backend: Optional[str] = None) -> str:
    """The ``AES…`` secret for ``password`` under the pgpool key, byte-identical to ``pg_enc``.

    ``backend`` is None (``cryptography`` if importable, else pure Python), "cryptography" or "pure".
    """
    data = password.encode("utf-8")
    if len(data) > MAX_AES_PASSWORD_BYTES:
        raise AgentError("password is {} bytes; Pgpool-II cannot read AES entries for passwords longer "
                         "than {} bytes, so choose a shorter one".format(len(data), MAX_AES_PASSWORD_BYTES))
    aes_key, iv = derive_key_iv(_key_bytes(key))
    return "AES" + base64.b64encode(_cbc(True, aes_key, iv, data, backend)).decode("ascii")


def decrypt_password(secret: str, key: Union[str, bytes], backend: Optional[str] = None) -> str:
    """Recover the password from an ``AES…`` secret (for example to re-hash an md5 role as SCRAM)."""
    if not secret.startswith("AES"):
        raise AgentError("pool_passwd secret is not an AES entry")
    try:
        raw = base64.b64decode(secret[3:].encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise AgentError("pool_passwd AES entry is not valid base64; re-create it") from None
    aes_key, iv = derive_key_iv(_key_bytes(key))
    try:
        plain = _cbc(False, aes_key, iv, raw, backend)
        return plain.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise AgentError("cannot decrypt the pool_passwd AES entry with this pgpool key; "
                         "the key file was changed after the entry was written") from None


def aes_line(user: str, password: str, key: Union[str, bytes], backend: Optional[str] = None) -> str:
    """A complete ``user:AES…`` line, as ``pg_enc -m`` would write it."""
    return "{}:{}".format(_escape_user(user), encrypt_password(password, key, backend))
