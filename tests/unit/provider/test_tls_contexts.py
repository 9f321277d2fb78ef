"""Outbound TLS contexts are built once per CA bundle and client certificate and shared:
the same bundle and record get the same context, a replaced bundle or a new upload a new one,
a failure is not kept, and only the most recently used are held."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from tasks.errors import JobFailed
from tasks.model.records import Certificate, utcnow
from tasks.provider.certificates import parse_certificate
from tasks.provider.tls import TlsContexts, ssl_context
from tasks.security.sealing import SecretBox, generate_key
from tests.support.leakcheck import remember_pem


def _bundle(path: Path) -> Path:
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


def _record(box: SecretBox, ca: trustme.CA, record_id: str = "crt_one") -> Certificate:
    leaf = ca.issue_cert("client.authq.test")
    parsed = parse_certificate(leaf.cert_chain_pems[0].bytes().decode() + leaf.private_key_pem.bytes().decode(), None)
    remember_pem(parsed.key_pem)
    return Certificate(id=record_id, tenant="t", certificate_pem=parsed.certificate_pem,
                       key_sealed=box.seal(parsed.key_pem), key_was_encrypted=False, subject=parsed.subject,
                       issuer=parsed.issuer, fingerprint_sha256=parsed.fingerprint_sha256,
                       not_before=parsed.not_before, not_after=parsed.not_after, created_at=utcnow())


def test_the_same_bundle_shares_one_context_and_a_replaced_bundle_gets_a_new_one(tmp_path: Path) -> None:
    contexts = TlsContexts()
    bundle = _bundle(tmp_path / "ca.pem")
    first = contexts.get(bundle)
    assert contexts.get(bundle) is first
    assert contexts.get(None) is not first and contexts.get(None) is contexts.get(None)
    before = len(first.get_ca_certs())
    with bundle.open("a") as more:  # another CA appended: the file changed, so a new context trusts it
        more.write(trustme.CA().cert_pem.bytes().decode())
    second = contexts.get(bundle)
    assert second is not first and len(second.get_ca_certs()) == before + 1


def test_a_certificate_gets_its_own_context_until_it_is_uploaded_again(tmp_path: Path) -> None:
    contexts = TlsContexts()
    box, ca = SecretBox(generate_key()), trustme.CA()
    record = _record(box, ca)
    with_cert = contexts.get(None, record, box)
    assert contexts.get(None, record, box) is with_cert
    assert contexts.get(None) is not with_cert
    uploaded_again = _record(box, ca)  # the same id, a new key
    assert contexts.get(None, uploaded_again, box) is not with_cert
    assert contexts.get(None, _record(box, ca, "crt_two"), box) is not with_cert


def test_a_context_that_fails_to_build_is_not_kept() -> None:
    contexts = TlsContexts()
    box, ca = SecretBox(generate_key()), trustme.CA()
    broken = _record(box, ca).model_copy(update={"key_sealed": box.seal("not a key")})
    for _ in range(2):
        with pytest.raises(JobFailed) as failed:
            contexts.get(None, broken, box)
        assert failed.value.code == "certificate_invalid"


def test_only_the_most_recently_used_contexts_are_kept(tmp_path: Path) -> None:
    contexts = TlsContexts(size=2)
    a, b, c = (_bundle(tmp_path / f"{name}.pem") for name in "abc")
    first_a = contexts.get(a)
    contexts.get(b)
    assert contexts.get(a) is first_a  # a used last: b goes first
    contexts.get(c)
    assert contexts.get(a) is first_a
    assert len(contexts._contexts) == 2


def test_the_outbound_context_is_the_shared_one() -> None:
    context = ssl_context(None)
    assert isinstance(context, ssl.SSLContext) and ssl_context(None) is context
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
