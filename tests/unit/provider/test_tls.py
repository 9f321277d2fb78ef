"""The client certificate's key on its way into ``ssl``: never on disk in the clear, nor
left behind, never derived from a passphrase again (it was opened at upload), and a key
that no longer opens is a clear job error. Records stored before keys were kept opened
(the key as uploaded and its passphrase) still load, unless their derivation costs too much."""

from __future__ import annotations

import hashlib
import ssl
import tempfile
import time
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from tasks.errors import JobFailed
from tasks.model.records import Certificate, utcnow
from tasks.provider.certificates import parse_certificate
from tasks.provider.tls import load_client_certificate
from tasks.security.sealing import SecretBox, generate_key
from tests.support.leakcheck import remember_pem
from tests.support.pkcs8 import pbkdf2_key_pem

PASSPHRASE = "pass-phrase-123"


def _leaf(ca: trustme.CA) -> tuple[str, object]:
    leaf = ca.issue_cert("client.authq.test")
    return leaf.cert_chain_pems[0].bytes().decode(), serialization.load_pem_private_key(leaf.private_key_pem.bytes(),
                                                                                         password=None)


def _record(box: SecretBox, cert_pem: str, key_pem: str, passphrase: str | None, *, legacy: bool) -> Certificate:
    """As the API stores it now (the key opened, sealed), or as it was stored before (``legacy``:
    the key as uploaded, sealed, and its passphrase sealed beside it)."""
    parsed = parse_certificate(cert_pem + key_pem, passphrase)
    remember_pem(parsed.key_pem)
    return Certificate(id="crt_test", tenant="t", certificate_pem=parsed.certificate_pem,
                       key_sealed=box.seal(key_pem if legacy else parsed.key_pem),
                       passphrase_sealed=box.seal(passphrase) if legacy and passphrase else None,
                       key_was_encrypted=parsed.encrypted, subject=parsed.subject, issuer=parsed.issuer,
                       fingerprint_sha256=parsed.fingerprint_sha256, not_before=parsed.not_before,
                       not_after=parsed.not_after, created_at=utcnow())


def _key_pem(key: object, passphrase: str | None) -> str:
    encryption = (serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
                  else serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,  # type: ignore[attr-defined]
                            encryption).decode()
    remember_pem(pem)
    return pem


@pytest.mark.parametrize("legacy", [False, True], ids=["opened-at-upload", "stored-before"])
@pytest.mark.parametrize("passphrase", [None, PASSPHRASE])
def test_key_loads_and_leaves_nothing_on_disk(tmp_path: Path, passphrase: str | None, legacy: bool) -> None:
    box = SecretBox(generate_key())
    cert_pem, key = _leaf(trustme.CA())
    record = _record(box, cert_pem, _key_pem(key, passphrase), passphrase, legacy=legacy)
    before = tempfile.tempdir
    tempfile.tempdir = str(tmp_path)  # watch the one directory the loader may use
    try:
        context = ssl.create_default_context()
        load_client_certificate(context, record, box)
    finally:
        tempfile.tempdir = before
    assert list(tmp_path.iterdir()) == []


def test_a_slow_key_is_derived_at_upload_only() -> None:
    """A key under 1,000,000 iterations (the most accepted): set-up takes a small part of one derivation."""
    box = SecretBox(generate_key())
    cert_pem, key = _leaf(trustme.CA())
    started = time.perf_counter()
    hashlib.pbkdf2_hmac("sha256", PASSPHRASE.encode(), b"salt" * 4, 1_000_000, 32)
    derive_seconds = time.perf_counter() - started
    record = _record(box, cert_pem, pbkdf2_key_pem(key, PASSPHRASE, 1_000_000), PASSPHRASE, legacy=False)
    assert record.passphrase_sealed is None and record.key_was_encrypted
    started = time.perf_counter()
    for _ in range(3):
        load_client_certificate(ssl.create_default_context(), record, box)
    assert (time.perf_counter() - started) / 3 < derive_seconds / 4


def test_a_stored_before_key_with_a_costly_derivation_fails_without_deriving() -> None:
    box = SecretBox(generate_key())
    cert_pem, key = _leaf(trustme.CA())
    costly = pbkdf2_key_pem(key, PASSPHRASE, 1_500_000)
    record = _record(box, cert_pem, _key_pem(key, None), None, legacy=True).model_copy(
        update={"key_sealed": box.seal(costly), "passphrase_sealed": box.seal(PASSPHRASE)})
    started = time.perf_counter()
    with pytest.raises(JobFailed) as failed:
        load_client_certificate(ssl.create_default_context(), record, box)
    assert failed.value.code == "certificate_invalid" and failed.value.field == "certificate_id"
    assert "costlier" in failed.value.message and time.perf_counter() - started < 0.3


def test_a_key_that_no_longer_opens_is_certificate_invalid() -> None:
    box = SecretBox(generate_key())
    cert_pem, key = _leaf(trustme.CA())
    record = _record(box, cert_pem, _key_pem(key, "right-pass"), "right-pass", legacy=True)
    other_box = SecretBox(generate_key())
    broken = record.model_copy(update={"key_sealed": other_box.seal(SecretBox.__name__),
                                       "passphrase_sealed": other_box.seal("right-pass")})
    with pytest.raises(JobFailed) as failed:
        load_client_certificate(ssl.create_default_context(), broken, other_box)
    assert failed.value.code == "certificate_invalid" and failed.value.field == "certificate_id"
