"""What opening an encrypted PKCS#8 key would cost, read before anyone tries the passphrase.

An ``ENCRYPTED PRIVATE KEY`` names its key derivation and its cost: PBKDF2's iteration count,
scrypt's N, r and p. Whoever uploads the key chooses them, and a count of 200,000,000 holds
a CPU for half a minute per try. OpenSSL makes such keys with 2048 iterations (scrypt:
N=16384, r=8, p=1); a cost far above that is refused here, by reading those few numbers
from the DER (a small walk, never the derivation itself).

    EncryptedPrivateKeyInfo ::= SEQUENCE { AlgorithmIdentifier, OCTET STRING }
      PBES2-params ::= SEQUENCE { keyDerivationFunc AlgorithmIdentifier, encryptionScheme ... }
        PBKDF2-params ::= SEQUENCE { salt, iterationCount INTEGER, keyLength?, prf? }
        scrypt-params ::= SEQUENCE { salt, costParameter N, blockSize r, parallelization p, keyLength? }
      PBES1 / PKCS#12 PBE params ::= SEQUENCE { salt OCTET STRING, iterations INTEGER }
"""

from __future__ import annotations

MAX_ITERATIONS = 1_000_000          # PBKDF2 / PBES1 / PKCS#12: 488x OpenSSL's 2048
MAX_SCRYPT_WORK = 16 * 16384 * 8    # N*r*p: 16x OpenSSL's default
MAX_SCRYPT_MEMORY = 64 * 1024 * 1024  # 128*N*r bytes: 4x OpenSSL's default (16 MiB)

_PBES2 = "1.2.840.113549.1.5.13"
_PBKDF2 = "1.2.840.113549.1.5.12"
_SCRYPT = "1.3.6.1.4.1.11591.4.11"
# PBES1 (PKCS#5 v1.5: MD2/MD5/SHA-1 with DES/RC2) and PKCS#12's password-based encryption.
_ITERATED = {f"1.2.840.113549.1.5.{n}" for n in (1, 3, 4, 6, 10, 11)} | {
    f"1.2.840.113549.1.12.1.{n}" for n in range(1, 7)}

_SEQUENCE, _INTEGER, _OID = 0x30, 0x02, 0x06


class UnreadableKey(ValueError):
    """The encrypted key's structure cannot be read: nothing may be derived from it."""


Element = tuple[int, int, int]  # (tag, start of contents, end of contents)


def _element(data: bytes, pos: int) -> Element:
    if pos + 2 > len(data):
        raise UnreadableKey("truncated")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        size = length & 0x7F
        if size == 0 or size > 4 or pos + size > len(data):
            raise UnreadableKey("invalid length")
        length = int.from_bytes(data[pos:pos + size], "big")
        pos += size
    if pos + length > len(data):
        raise UnreadableKey("truncated")
    return tag, pos, pos + length


def _inside(data: bytes, sequence: Element) -> list[Element]:
    tag, start, end = sequence
    if tag != _SEQUENCE:
        raise UnreadableKey("not a SEQUENCE")
    items = []
    while start < end:
        item = _element(data, start)
        if item[2] > end:
            raise UnreadableKey("invalid length")
        items.append(item)
        start = item[2]
    return items


def _oid(data: bytes, item: Element) -> str:
    tag, start, end = item
    if tag != _OID or start == end:
        raise UnreadableKey("no algorithm")
    raw = data[start:end]
    parts = [raw[0] // 40, raw[0] % 40] if raw[0] < 80 else [2, raw[0] - 80]
    value = 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(map(str, parts))


def _integer(data: bytes, item: Element) -> int:
    tag, start, end = item
    if tag != _INTEGER or not 0 < end - start <= 9:
        raise UnreadableKey("the cost is not a small integer")
    return int.from_bytes(data[start:end], "big", signed=True)


def _iterations(count: int, kind: str = "") -> str | None:
    if 1 <= count <= MAX_ITERATIONS:
        return None
    return f"its {kind}iteration count is {count:,} (at most {MAX_ITERATIONS:,} are accepted)"


def _scrypt(n: int, r: int, p: int) -> str | None:
    if min(n, r, p) >= 1 and n * r * p <= MAX_SCRYPT_WORK and 128 * n * r <= MAX_SCRYPT_MEMORY:
        return None
    return (f"its scrypt cost is N={n:,}, r={r}, p={p} (at most N*r*p = {MAX_SCRYPT_WORK:,} "
            f"and {MAX_SCRYPT_MEMORY // 2**20} MiB are accepted)")


def derivation_problem(der: bytes) -> str | None:
    """Why opening this DER ``EncryptedPrivateKeyInfo`` would cost too much (the end of a
    sentence about the key), or None when its cost is within bounds.

    Raises ``UnreadableKey`` when the structure cannot be read."""
    try:
        key_info = _inside(der, _element(der, 0))
        algorithm = _inside(der, key_info[0])
        scheme = _oid(der, algorithm[0])
        if scheme in _ITERATED:
            return _iterations(_integer(der, _inside(der, algorithm[1])[1]))
        if scheme != _PBES2:
            return f"its encryption ({scheme}) is not one authq opens (use PBES2 with PBKDF2 or scrypt)"
        kdf = _inside(der, _inside(der, algorithm[1])[0])
        kdf_name, fields = _oid(der, kdf[0]), _inside(der, kdf[1])
        if kdf_name == _PBKDF2:
            return _iterations(_integer(der, fields[1]), "PBKDF2 ")
        if kdf_name == _SCRYPT:
            return _scrypt(*(_integer(der, fields[i]) for i in (1, 2, 3)))
        return f"its key derivation ({kdf_name}) is not one authq opens (use PBKDF2 or scrypt)"
    except IndexError:
        raise UnreadableKey("a part is missing") from None
