"""Client certificates for mutual TLS: parse, check, describe (never reveal the key).

A PEM bundle must hold a certificate and its private key. The key may be encrypted, in
which case the passphrase must open it. An expired certificate is accepted (the job that
uses it fails with ``certificate_expired``); a mismatched key or wrong passphrase is a 422.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from tasks.errors import RequestInvalid

KEY_BLOCK = re.compile(r"-----BEGIN ((?:ENCRYPTED |RSA |EC |DSA )?PRIVATE KEY)-----.*?-----END \1-----", re.S)
CERT_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)


@dataclass(frozen=True)
class ParsedCertificate:
    encrypted: bool                 # the key needed the passphrase
    certificate_pem: str
    key_pem: str
    subject: str
    issuer: str
    fingerprint_sha256: str
    not_before: datetime
    not_after: datetime


def _public_bytes(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def parse_certificate(pem: str, passphrase: str | None) -> ParsedCertificate:
    certs = CERT_BLOCK.findall(pem)
    keys = KEY_BLOCK.search(pem)
    if not certs:
        raise RequestInvalid.one("certificate", "The certificate must contain a PEM certificate block.")
    if keys is None:
        raise RequestInvalid.one("certificate", "The certificate must contain the PEM private key of the certificate.")
    try:
        loaded = [x509.load_pem_x509_certificate(block.encode()) for block in certs]
    except ValueError:
        raise RequestInvalid.one("certificate", "The certificate is not a valid PEM X.509 certificate.") from None
    key_pem = keys.group(0)
    encrypted = "ENCRYPTED" in keys.group(1) or "Proc-Type: 4,ENCRYPTED" in key_pem
    try:
        key = serialization.load_pem_private_key(
            key_pem.encode(), password=passphrase.encode() if (passphrase and encrypted) else None)
    except TypeError:
        # Raised when the key is encrypted and no passphrase was given (or the reverse).
        raise RequestInvalid.one("passphrase", "The private key is encrypted; give its passphrase.") from None
    except ValueError:
        if encrypted:
            raise RequestInvalid.one("passphrase", "The passphrase does not open the private key.") from None
        raise RequestInvalid.one("certificate", "The private key is not a valid PEM private key.") from None
    # The leaf is the certificate of this key, wherever the bundle put it; the rest is its chain.
    mine = _public_bytes(key.public_key())
    leaf_index = next((i for i, cert in enumerate(loaded) if _public_bytes(cert.public_key()) == mine), None)
    if leaf_index is None:
        raise RequestInvalid.one("certificate", "The private key does not match the certificate.")
    leaf = loaded[leaf_index]
    chain = [certs[leaf_index]] + [block for i, block in enumerate(certs) if i != leaf_index]
    return ParsedCertificate(
        encrypted=encrypted,
        certificate_pem="\n".join(chain) + "\n",
        key_pem=key_pem + "\n",
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        fingerprint_sha256=leaf.fingerprint(hashes.SHA256()).hex(":").upper(),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
    )
