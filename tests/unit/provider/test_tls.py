"""The client certificate's key on its way into ``ssl``: never on disk in the clear, nor
left behind, and a key that no longer opens is a clear job error."""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from tasks.errors import JobFailed
from tasks.model.records import Certificate, utcnow
from tasks.provider.certificates import parse_certificate
from tasks.provider.tls import load_client_certificate
from tasks.security.sealing import SecretBox, generate_key


def _record(box: SecretBox, ca: trustme.CA, passphrase: str | None = None) -> Certificate:
    leaf = ca.issue_cert("client.authq.test")
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    encryption = (serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
                  else serialization.NoEncryption())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption).decode()
    parsed = parse_certificate(leaf.cert_chain_pems[0].bytes().decode() + key_pem, passphrase)
    return Certificate(id="crt_test", tenant="t", certificate_pem=parsed.certificate_pem,
                       key_sealed=box.seal(parsed.key_pem),
                       passphrase_sealed=box.seal(passphrase) if passphrase else None,
                       subject=parsed.subject, issuer=parsed.issuer, fingerprint_sha256=parsed.fingerprint_sha256,
                       not_before=parsed.not_before, not_after=parsed.not_after, created_at=utcnow())


@pytest.mark.parametrize("passphrase", [None, "pass-phrase-123"])
def test_key_loads_and_leaves_nothing_on_disk(tmp_path: Path, passphrase: str | None) -> None:
    box = SecretBox(generate_key())
    record = _record(box, trustme.CA(), passphrase)
    before = tempfile.tempdir
    tempfile.tempdir = str(tmp_path)  # watch the one directory the loader may use
    try:
        context = ssl.create_default_context()
        load_client_certificate(context, record, box)
    finally:
        tempfile.tempdir = before
    assert list(tmp_path.iterdir()) == []


def test_a_key_that_no_longer_opens_is_certificate_invalid() -> None:
    record = _record(SecretBox(generate_key()), trustme.CA(), "right-pass")
    other_box = SecretBox(generate_key())
    broken = record.model_copy(update={"key_sealed": other_box.seal(SecretBox.__name__),
                                       "passphrase_sealed": other_box.seal("right-pass")})
    with pytest.raises(JobFailed) as failed:
        load_client_certificate(ssl.create_default_context(), broken, other_box)
    assert failed.value.code == "certificate_invalid" and failed.value.field == "certificate_id"
