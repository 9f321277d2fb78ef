"""Client certificates for mutual TLS: parse, check, describe (never reveal the key).

A PEM bundle must hold a certificate and its private key. The key may be encrypted, in
which case the passphrase must open it; its key-derivation cost is read first and refused
when far above OpenSSL's defaults (``key_derivation.py``). The key is opened once, here, and
kept unencrypted (the caller seals it): a worker's TLS set-up never derives a key again.
An expired certificate is accepted (the job that uses it fails with ``certificate_expired``);
a mismatched key or wrong passphrase is a 422.

``parse_in_child`` is the same parse as the entry point of a child process, so that a costly
upload holds neither the API's event loop nor its interpreter (``api/certificate_parser.py``).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from tasks.errors import RequestInvalid
from tasks.provider.key_derivation import UnreadableKey, derivation_problem

KEY_LABELS = ("ENCRYPTED PRIVATE KEY", "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "DSA PRIVATE KEY")
CERT_LABEL = "CERTIFICATE"


@dataclass(frozen=True)
class ParsedCertificate:
    encrypted: bool                 # the key needed the passphrase
    certificate_pem: str
    key_pem: str                    # PKCS#8, unencrypted: seal it
    subject: str
    issuer: str
    fingerprint_sha256: str
    not_before: datetime
    not_after: datetime


def pem_blocks(pem: str, labels: tuple[str, ...]) -> list[tuple[str, str]]:
    """The ``(label, block)`` of each PEM block with one of ``labels``, in order.

    Found with ``str.find`` (linear in the bundle, whatever it holds); a regular expression
    with ``.*?`` between the markers rescans the rest of the text for each unclosed ``BEGIN``."""
    found: list[tuple[str, str]] = []
    unclosed: set[str] = set()
    pos = 0
    while (start := pem.find("-----BEGIN ", pos)) >= 0:
        label_end = pem.find("-----", start + 11)
        label = pem[start + 11:label_end] if label_end >= 0 else ""
        pos = start + 11
        if label not in labels or label in unclosed:
            continue
        end_marker = f"-----END {label}-----"
        end = pem.find(end_marker, label_end + 5)
        if end < 0:
            unclosed.add(label)  # no later BEGIN of this label can be closed either
            continue
        found.append((label, pem[start:end + len(end_marker)]))
        pos = end + len(end_marker)
    return found


def _public_bytes(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _der_of(block: str) -> bytes:
    lines = [line for line in block.splitlines() if line and not line.startswith("-----")]
    try:
        return base64.b64decode("".join(lines), validate=True)
    except (binascii.Error, ValueError):
        raise RequestInvalid.one("certificate", "The private key is not a valid PEM private key.") from None


def refuse_costly_key(pem: str) -> None:
    """422 at ``passphrase`` when the bundle's encrypted key would cost far more than OpenSSL's
    defaults to open; cheap (reads a few DER fields), so callers may run it anywhere."""
    for label, block in pem_blocks(pem, KEY_LABELS)[:1]:  # the key parse_certificate opens
        if label != "ENCRYPTED PRIVATE KEY":
            continue  # unencrypted, or OpenSSL's traditional form: one MD5 round, nothing to bound
        try:
            problem = derivation_problem(_der_of(block))
        except UnreadableKey:
            raise RequestInvalid.one("certificate", "The private key is not a valid PEM private key.") from None
        if problem is not None:
            raise RequestInvalid.one("passphrase", f"The private key's encryption is far costlier to open than "
                                                   f"OpenSSL's defaults: {problem}. Encrypt it again with the "
                                                   "defaults (or upload it unencrypted over TLS).")


def _load_key(block: str, label: str, passphrase: str | None) -> tuple[Any, bool]:
    encrypted = label == "ENCRYPTED PRIVATE KEY" or "Proc-Type: 4,ENCRYPTED" in block
    try:
        key = serialization.load_pem_private_key(
            block.encode(), password=passphrase.encode() if (passphrase and encrypted) else None)
    except TypeError:
        # Raised when the key is encrypted and no passphrase was given (or the reverse).
        raise RequestInvalid.one("passphrase", "The private key is encrypted; give its passphrase.") from None
    except ValueError:
        if encrypted:
            raise RequestInvalid.one("passphrase", "The passphrase does not open the private key.") from None
        raise RequestInvalid.one("certificate", "The private key is not a valid PEM private key.") from None
    return key, encrypted


def parse_certificate(pem: str, passphrase: str | None) -> ParsedCertificate:
    certs = [block for _, block in pem_blocks(pem, (CERT_LABEL,))]
    keys = pem_blocks(pem, KEY_LABELS)
    if not certs:
        raise RequestInvalid.one("certificate", "The certificate must contain a PEM certificate block.")
    if not keys:
        raise RequestInvalid.one("certificate", "The certificate must contain the PEM private key of the certificate.")
    try:
        loaded = [x509.load_pem_x509_certificate(block.encode()) for block in certs]
    except ValueError:
        raise RequestInvalid.one("certificate", "The certificate is not a valid PEM X.509 certificate.") from None
    label, key_block = keys[0]
    refuse_costly_key(key_block)
    key, encrypted = _load_key(key_block, label, passphrase)
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
        key_pem=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode(),
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        fingerprint_sha256=leaf.fingerprint(hashes.SHA256()).hex(":").upper(),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
    )


def parse_in_child(answer: Connection, pem: str, passphrase: str | None) -> None:
    """Run in a child process: send back ``("parsed", ParsedCertificate)`` or ``("invalid", errors)``."""
    try:
        outcome: tuple[str, Any] = ("parsed", parse_certificate(pem, passphrase))
    except RequestInvalid as exc:
        outcome = ("invalid", exc.errors)
    except Exception:  # anything else a hostile bundle provokes is still the bundle's fault
        outcome = ("invalid", {"certificate": ["The certificate could not be parsed."]})
    answer.send(outcome)
    answer.close()
