"""pool_passwd text handling and Pgpool-II's AES format."""

import os
import random

import pytest

from dbtls_agent.errors import AgentError
from dbtls_agent.roles.pgpool import aes, poolpasswd

BACKENDS = ["pure", "cryptography"]

# Vectors produced by Pgpool-II's own pg_enc 4.3.5.
VECTORS = [
    ("pgpool-secret-key", "alice", "S3cret!pw", "alice:AESTAd+8yjbLIkDHwmVbwWEkw=="),
    ("pgpool-secret-key", "bob", "pass:with:colons", "bob:AES7Bf3L7tPmwwDrTF+qwzFxbsJHY//ro6elUVa9RZEW3A="),
    ("pgpool-secret-key", None, "exactly16bytes!!", "AESzDKKgYc2qXdkFUqcPl4KfWN9g/0gU2fqFkPiG1YYsBk="),
    ("k", None, "p", "AES8Dxak0D0yw3cm4ZPNA97xw=="),
    # Made for this repository with the real pg_enc from Debian 12's pgpool2 4.3.5-1+deb12u1
    # (extracted with dpkg-deb -x, not installed):
    #   printf 'dbtls-vector-key-0123456789abcdef\n' > $T/.pgpoolkey
    #   printf "pool_passwd = 'pool_passwd'\n" > $T/pgpool.conf
    #   printf 'carol:p\xc3\xa4ss w0rd $HOME "q" with spaces & 40+ bytes long!\nerin:x\n' > $T/users.txt
    #   PGPOOLKEYFILE=$T/.pgpoolkey pg_enc -m -f $T/pgpool.conf -i $T/users.txt ; cat $T/pool_passwd
    ("dbtls-vector-key-0123456789abcdef", "carol", 'p\u00e4ss w0rd $HOME "q" with spaces & 40+ bytes long!',
     "carol:AESD37xAcB0O5up9bdXEYKZbs81Z8TMy5Kg/NMyrcl+z+YkOgcWP7kdZLmhqLnnvzbv1lWessXbrw0EGkAQJvM6GA=="),
    ("dbtls-vector-key-0123456789abcdef", "erin", "x", "erin:AESSlRSDSj46/HWfiHIznRF1g=="),
]


@pytest.fixture(params=BACKENDS)
def backend(request):
    if request.param == "cryptography":
        pytest.importorskip("cryptography")
    return request.param


@pytest.mark.parametrize("key,user,password,expected", VECTORS)
def test_vectors(backend, key, user, password, expected):
    if user is None:
        assert poolpasswd.encrypt_password(password, key, backend) == expected
    else:
        assert poolpasswd.aes_line(user, password, key, backend) == expected
    secret = expected.split(":", 1)[1] if user else expected
    assert poolpasswd.decrypt_password(secret, key, backend) == password


def test_key_derivation_vectors():
    assert poolpasswd.derive_key_iv(b"pgpool-secret-key") == (
        bytes.fromhex("25637774f2d4605b3efb94179b3b53701656276881a27c526f763bef06a55f8c"),
        bytes.fromhex("32ec85cf010f9db83b6f42f470fbbba0"))
    assert poolpasswd.derive_key_iv(b"k") == (
        bytes.fromhex("13fbd79c3d390e5d6585a21e11ff5ec1970cff0c427a619ab5dcc6e6e2448e7c"),
        bytes.fromhex("b7301acfb1c7a18a6fcf51f3ab71075c"))


def test_md5_vector():
    assert poolpasswd.md5_secret("dave", "pw3") == "md5a22d8828295decc31aea7bc92059424a"


@pytest.mark.parametrize("key_bits,expected", [
    (128, "69c4e0d86a7b0430d8cdb78070b4c55a"),   # FIPS-197 appendix C.1
    (192, "dda97ca4864cdfe06eaf70a0ec0d7191"),   # C.2
    (256, "8ea2b7ca516745bfeafc49904b496089"),   # C.3
])
def test_pure_aes_fips197(key_bits, expected):
    key = bytes(range(key_bits // 8))
    plain = bytes.fromhex("00112233445566778899aabbccddeeff")
    assert aes.encrypt_block(key, plain).hex() == expected
    assert aes.decrypt_block(key, bytes.fromhex(expected)) == plain


def test_pure_aes_matches_cryptography_on_random_input():
    ciphers = pytest.importorskip("cryptography.hazmat.primitives.ciphers")
    rng = random.Random(4)
    for length in list(range(0, 40)) + [rng.randrange(40, 300) for _ in range(20)]:
        key, iv, data = os.urandom(32), os.urandom(16), os.urandom(length)
        encryptor = ciphers.Cipher(ciphers.algorithms.AES(key), ciphers.modes.CBC(iv)).encryptor()
        reference = encryptor.update(aes.pkcs7_pad(data)) + encryptor.finalize()
        assert aes.cbc_encrypt(key, iv, data) == reference
        assert aes.cbc_decrypt(key, iv, reference) == data


def test_round_trip_random_passwords(backend):
    rng = random.Random(7)
    for _ in range(30):
        password = "".join(rng.choice("abcXYZ019:$'\" \\\u00e9") for _ in range(rng.randrange(1, 30)))
        key = poolpasswd.generate_pgpool_key()
        assert poolpasswd.decrypt_password(poolpasswd.encrypt_password(password, key, backend), key, backend) == password


def test_wrong_key_is_a_clear_error(backend):
    secret = poolpasswd.encrypt_password("S3cret!pw", "right-key-0123456789", backend)
    with pytest.raises(AgentError, match="cannot decrypt"):
        # This wrong key happens to give bad padding; any failure must be an AgentError.
        for key in (f"wrong-key-{i}" for i in range(50)):
            poolpasswd.decrypt_password(secret, key, backend)


@pytest.mark.parametrize("secret", ["AES!!!notbase64", "AESAAAA", "md5abc"])
def test_malformed_aes_entries(secret):
    with pytest.raises(AgentError):
        poolpasswd.decrypt_password(secret, "k")


def test_length_limit():
    poolpasswd.encrypt_password("x" * 79, "k")
    with pytest.raises(AgentError, match="79 bytes"):
        poolpasswd.encrypt_password("x" * 80, "k")


def test_generate_key():
    keys = {poolpasswd.generate_pgpool_key() for _ in range(20)}
    assert len(keys) == 20
    for key in keys:
        assert len(key) == 43 and "\n" not in key and not poolpasswd.is_weak_key(key)
    assert poolpasswd.is_weak_key("defaultpgpoolkey")


def test_key_from_file_text():
    assert poolpasswd.key_from_file_text("abc\nignored\n") == b"abc"
    assert poolpasswd.key_from_file_text(b"abc\r\n") == b"abc\r"  # Pgpool keeps the \r: a different key
    with pytest.raises(AgentError):
        poolpasswd.key_from_file_text("\n")


POOL_PASSWD = "webadmin:md5a22d8828295decc31aea7bc92059424a\nuser\\:colon:TEXTpw:with:colons\n" \
              "pgpool:AESTAd+8yjbLIkDHwmVbwWEkw==:backend_pgpool:AES8Dxak0D0yw3cm4ZPNA97xw==\n" \
              "scram:SCRAM-SHA-256$4096:abc$def:ghi\nplain:secret\nshort:md5abc\n"


def test_parse_pool_passwd_kinds_and_escapes():
    entries = poolpasswd.parse_pool_passwd(POOL_PASSWD)
    assert [(e.user, e.kind) for e in entries] == [
        ("webadmin", poolpasswd.MD5), ("user:colon", poolpasswd.TEXT), ("pgpool", poolpasswd.AES), ("scram", poolpasswd.SCRAM),
        ("plain", poolpasswd.PLAIN), ("short", poolpasswd.PLAIN)]
    assert entries[1].secret == "TEXTpw:with:colons"
    assert entries[2].rest == ":backend_pgpool:AES8Dxak0D0yw3cm4ZPNA97xw=="


def test_set_entry_replaces_first_keeps_others_and_is_idempotent():
    out = poolpasswd.set_entry(POOL_PASSWD, "pgpool", "AESnew")
    assert "pgpool:AESnew:backend_pgpool:AES8Dxak0D0yw3cm4ZPNA97xw==\n" in out
    assert out.replace("AESnew", "AESTAd+8yjbLIkDHwmVbwWEkw==") == POOL_PASSWD
    assert poolpasswd.set_entry(out, "pgpool", "AESnew") == out
    added = poolpasswd.set_entry("a:b", "user:x", "AESz")
    assert added == "a:b\nuser\\:x:AESz\n"
    assert poolpasswd.get_entry(added, "user:x").secret == "AESz"
    assert poolpasswd.set_entry("", "a", "b") == "a:b\n"
    assert poolpasswd.set_entry("x:y\r\n", "a", "b") == "x:y\r\na:b\r\n"


def test_remove_entry():
    assert poolpasswd.remove_entry("a:1\nb:2\n", "a") == "b:2\n"
    assert poolpasswd.remove_entry("a:1\nb:2", "b") == "a:1"
    assert poolpasswd.remove_entry("a:1\n", "zzz") == "a:1\n"


@pytest.mark.parametrize("text", ["no colon here\n", ":emptyuser\n", "a:b\x00"])
def test_bad_pool_passwd(text):
    with pytest.raises(AgentError) as info:
        poolpasswd.parse_pool_passwd(text)
    assert "\n" not in str(info.value)
