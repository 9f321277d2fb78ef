"""Encrypted PKCS#8 keys with any key-derivation cost, made as OpenSSL makes them (PBES2:
PBKDF2-HMAC-SHA256 or scrypt, AES-256-CBC), with a minimal DER writer: ``cryptography`` only
writes its own fixed costs."""

from __future__ import annotations

import base64
import hashlib
import os
import textwrap

from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.support.leakcheck import remember_pem


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    length = bytes([size]) if size < 128 else bytes([0x80 | ((size.bit_length() + 7) // 8)]) + size.to_bytes(
        (size.bit_length() + 7) // 8, "big")
    return bytes([tag]) + length + body


def _seq(*parts: bytes) -> bytes:
    return _der(0x30, b"".join(parts))


def _oid(dotted: str) -> bytes:
    first, second, *rest = (int(x) for x in dotted.split("."))
    out = bytearray([40 * first + second])
    for part in rest:
        chunk = [part & 0x7F]
        part >>= 7
        while part:
            chunk.append(0x80 | (part & 0x7F))
            part >>= 7
        out += bytes(reversed(chunk))
    return _der(0x06, bytes(out))


def _int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _octets(data: bytes) -> bytes:
    return _der(0x04, data)


def _pem(der: bytes) -> str:
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    pem = f"-----BEGIN ENCRYPTED PRIVATE KEY-----\n{body}\n-----END ENCRYPTED PRIVATE KEY-----\n"
    remember_pem(pem)
    return pem


def _encrypt(key: object, secret: bytes) -> tuple[bytes, bytes]:
    plain = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,  # type: ignore[attr-defined]
                              serialization.NoEncryption())
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(secret), modes.CBC(iv)).encryptor()
    return iv, encryptor.update(padder.update(plain) + padder.finalize()) + encryptor.finalize()


def _pbes2(kdf: bytes, iv: bytes, ciphertext: bytes) -> str:
    aes256 = _seq(_oid("2.16.840.1.101.3.4.1.42"), _octets(iv))
    return _pem(_seq(_seq(_oid("1.2.840.113549.1.5.13"), _seq(kdf, aes256)), _octets(ciphertext)))


def pbkdf2_key_pem(key: object, passphrase: str, iterations: int) -> str:
    """``key`` encrypted under ``passphrase`` with PBKDF2-HMAC-SHA256 at ``iterations`` (really:
    making it costs one derivation)."""
    salt = os.urandom(16)
    iv, ciphertext = _encrypt(key, hashlib.pbkdf2_hmac("sha256", passphrase.encode(), salt, iterations, 32))
    hmac_sha256 = _seq(_oid("1.2.840.113549.2.9"), _der(0x05, b""))
    return _pbes2(_seq(_oid("1.2.840.113549.1.5.12"), _seq(_octets(salt), _int(iterations), hmac_sha256)),
                  iv, ciphertext)


def scrypt_key_pem(key: object, passphrase: str, n: int, r: int, p: int, *, real: bool = True) -> str:
    """With scrypt; ``real=False`` writes the parameters over a throwaway ciphertext (for costs
    too high to pay even once here)."""
    salt = os.urandom(16)
    secret = (hashlib.scrypt(passphrase.encode(), salt=salt, n=n, r=r, p=p, dklen=32, maxmem=2**31 - 1) if real
              else os.urandom(32))
    iv, ciphertext = _encrypt(key, secret)
    params = _seq(_octets(salt), _int(n), _int(r), _int(p), _int(32))
    return _pbes2(_seq(_oid("1.3.6.1.4.1.11591.4.11"), params), iv, ciphertext)


def pbes1_key_pem(iterations: int) -> str:
    """A PKCS#12 PBE (pbeWithSHAAnd3-KeyTripleDES-CBC) header at ``iterations`` over throwaway bytes."""
    return _pem(_seq(_seq(_oid("1.2.840.113549.1.12.1.3"), _seq(_octets(os.urandom(8)), _int(iterations))),
                     _octets(os.urandom(64))))
