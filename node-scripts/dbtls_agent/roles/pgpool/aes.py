"""A small pure-Python AES (FIPS-197) with CBC mode and PKCS#7 padding.

Why this exists: Pgpool-II stores ``pool_passwd`` secrets as AES-256-CBC, and platform nodes may have
no ``cryptography`` package. The only other way to run AES with the standard library would be
``openssl enc -K <key> -iv <iv>``, which puts the key on the command line where every local user can
read it in ``/proc``. So the agent carries this implementation and uses it when ``cryptography`` is
not importable. It is slow (a few thousand blocks per second) and not constant-time; that is fine for
encrypting a handful of short passwords on the node that owns the key, and it must not be used for
anything bulkier.

Tables are computed at import from the field arithmetic rather than pasted in, so there is no
256-entry literal to mistype.
"""

from typing import List, Sequence, Tuple

BLOCK_SIZE = 16


def _build_tables() -> Tuple[List[int], List[int]]:
    """Return (S-box, inverse S-box) derived from GF(2^8) inverses and the affine map."""
    # exp/log tables over the generator 3 turn inversion into a table lookup.
    exp = [0] * 255
    log = [0] * 256
    value = 1
    for power in range(255):
        exp[power] = value
        log[value] = power
        doubled = (value << 1) ^ (0x11B if value & 0x80 else 0)
        value = doubled ^ value  # multiply by 3 = x + 1
    sbox = [0] * 256
    inv_sbox = [0] * 256
    for byte in range(256):
        inverse = 0 if byte == 0 else exp[(255 - log[byte]) % 255]
        # The affine transform: XOR of the inverse with four left rotations of itself, plus 0x63.
        result = inverse
        for shift in range(1, 5):
            result ^= ((inverse << shift) | (inverse >> (8 - shift))) & 0xFF
        result ^= 0x63
        sbox[byte] = result
        inv_sbox[result] = byte
    return sbox, inv_sbox


def _gf_mul(a: int, b: int) -> int:
    """Multiply two bytes in AES's field (used only to build the MixColumns tables)."""
    product = 0
    while b:
        if b & 1:
            product ^= a
        a = ((a << 1) ^ (0x11B if a & 0x80 else 0)) & 0xFF
        b >>= 1
    return product


_SBOX, _INV_SBOX = _build_tables()
_MUL = {factor: [_gf_mul(byte, factor) for byte in range(256)] for factor in (2, 3, 9, 11, 13, 14)}
_RCON = [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1B, 0x36]


def _expand_key(key: bytes) -> List[List[int]]:
    """Return the round keys (Nr + 1 lists of 16 ints) for a 16-, 24- or 32-byte key."""
    if len(key) not in (16, 24, 32):
        raise ValueError("AES key must be 16, 24 or 32 bytes, got {}".format(len(key)))
    nk = len(key) // 4
    rounds = nk + 6
    words = [list(key[4 * i:4 * i + 4]) for i in range(nk)]
    for i in range(nk, 4 * (rounds + 1)):
        temp = list(words[i - 1])
        if i % nk == 0:
            temp = temp[1:] + temp[:1]
            temp = [_SBOX[b] for b in temp]
            temp[0] ^= _RCON[i // nk - 1]
        elif nk > 6 and i % nk == 4:
            temp = [_SBOX[b] for b in temp]
        words.append([words[i - nk][j] ^ temp[j] for j in range(4)])
    return [sum(words[4 * r:4 * r + 4], []) for r in range(rounds + 1)]


def _add(state: List[int], round_key: Sequence[int]) -> List[int]:
    return [state[i] ^ round_key[i] for i in range(BLOCK_SIZE)]


# The state is kept column-major like the input bytes: index = row + 4 * column.
_SHIFT = [(r + 4 * ((c + r) % 4)) for c in range(4) for r in range(4)]
_UNSHIFT = [0] * 16
for _dst, _src in enumerate(_SHIFT):
    _UNSHIFT[_src] = _dst


def _mix(state: List[int]) -> List[int]:
    m2, m3 = _MUL[2], _MUL[3]
    out = []
    for c in range(0, 16, 4):
        a0, a1, a2, a3 = state[c:c + 4]
        out.extend((
            m2[a0] ^ m3[a1] ^ a2 ^ a3,
            a0 ^ m2[a1] ^ m3[a2] ^ a3,
            a0 ^ a1 ^ m2[a2] ^ m3[a3],
            m3[a0] ^ a1 ^ a2 ^ m2[a3],
        ))
    return out


def _unmix(state: List[int]) -> List[int]:
    m9, m11, m13, m14 = _MUL[9], _MUL[11], _MUL[13], _MUL[14]
    out = []
    for c in range(0, 16, 4):
        a0, a1, a2, a3 = state[c:c + 4]
        out.extend((
            m14[a0] ^ m11[a1] ^ m13[a2] ^ m9[a3],
            m9[a0] ^ m14[a1] ^ m11[a2] ^ m13[a3],
            m13[a0] ^ m9[a1] ^ m14[a2] ^ m11[a3],
            m11[a0] ^ m13[a1] ^ m9[a2] ^ m14[a3],
        ))
    return out


def _encrypt_block(round_keys: List[List[int]], block: Sequence[int]) -> List[int]:
    state = _add(list(block), round_keys[0])
    last = len(round_keys) - 1
    for rnd in range(1, last + 1):
        state = [_SBOX[state[i]] for i in _SHIFT]  # SubBytes and ShiftRows commute
        if rnd != last:
            state = _mix(state)
        state = _add(state, round_keys[rnd])
    return state


def _decrypt_block(round_keys: List[List[int]], block: Sequence[int]) -> List[int]:
    last = len(round_keys) - 1
    state = _add(list(block), round_keys[last])
    for rnd in range(last - 1, -1, -1):
        state = [_INV_SBOX[state[i]] for i in _UNSHIFT]
        state = _add(state, round_keys[rnd])
        if rnd:
            state = _unmix(state)
    return state


def encrypt_block(key: bytes, block: bytes) -> bytes:
    """Encrypt one 16-byte block (ECB of a single block; exposed for the FIPS-197 test vectors)."""
    return bytes(_encrypt_block(_expand_key(key), block))


def decrypt_block(key: bytes, block: bytes) -> bytes:
    """Decrypt one 16-byte block."""
    return bytes(_decrypt_block(_expand_key(key), block))


def pkcs7_pad(data: bytes) -> bytes:
    """Pad to a whole number of blocks; a full block is added when already aligned (as OpenSSL does)."""
    count = BLOCK_SIZE - len(data) % BLOCK_SIZE
    return data + bytes([count]) * count


def pkcs7_unpad(data: bytes) -> bytes:
    """Strip PKCS#7 padding; a bad pad almost always means the wrong key, so say so via ValueError."""
    if not data or len(data) % BLOCK_SIZE:
        raise ValueError("ciphertext is not a whole number of AES blocks")
    count = data[-1]
    if not 1 <= count <= BLOCK_SIZE or data[-count:] != bytes([count]) * count:
        raise ValueError("bad padding after decryption (wrong key?)")
    return data[:-count]


def cbc_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """AES-CBC with PKCS#7 padding, the same bytes OpenSSL's EVP default produces."""
    if len(iv) != BLOCK_SIZE:
        raise ValueError("AES IV must be 16 bytes")
    round_keys = _expand_key(key)
    previous = list(iv)
    out = bytearray()
    padded = pkcs7_pad(plaintext)
    for start in range(0, len(padded), BLOCK_SIZE):
        block = [padded[start + i] ^ previous[i] for i in range(BLOCK_SIZE)]
        previous = _encrypt_block(round_keys, block)
        out.extend(previous)
    return bytes(out)


def cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    """Inverse of :func:`cbc_encrypt`; raises ValueError on a malformed input or bad padding."""
    if len(iv) != BLOCK_SIZE:
        raise ValueError("AES IV must be 16 bytes")
    if not ciphertext or len(ciphertext) % BLOCK_SIZE:
        raise ValueError("ciphertext is not a whole number of AES blocks")
    round_keys = _expand_key(key)
    previous = iv
    out = bytearray()
    for start in range(0, len(ciphertext), BLOCK_SIZE):
        block = ciphertext[start:start + BLOCK_SIZE]
        plain = _decrypt_block(round_keys, block)
        out.extend(plain[i] ^ previous[i] for i in range(BLOCK_SIZE))
        previous = block
    return pkcs7_unpad(bytes(out))
