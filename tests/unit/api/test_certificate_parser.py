"""``api.certificate_parser.CertificateParser``: uploads parsed in child processes, at most
``slots`` at once, each within its deadline (killed past it), a slot freed only when its
child is gone."""

from __future__ import annotations

import asyncio
import time

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from api.certificate_parser import CertificateParser
from tasks.errors import CertificateParserBusy, RequestInvalid
from tests.support.leakcheck import remember_secret
from tests.support.pkcs8 import pbkdf2_key_pem

PASSPHRASE = "parser-pass-phrase-77"
remember_secret(PASSPHRASE)


@pytest.fixture(scope="module")
def bundles() -> tuple[str, str]:
    """(a bundle that parses at once, one whose key takes 1,000,000 iterations to open)."""
    leaf = trustme.CA().issue_cert("parser.authq.test")
    cert = leaf.cert_chain_pems[0].bytes().decode()
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    return cert + leaf.private_key_pem.bytes().decode(), cert + pbkdf2_key_pem(key, PASSPHRASE, 1_000_000)


async def test_a_bundle_is_parsed_in_a_child(bundles) -> None:
    parser = CertificateParser()
    try:
        parsed = await parser.parse(bundles[0], None)
        assert parsed.subject and parsed.key_pem.startswith("-----BEGIN PRIVATE KEY-----")
        with pytest.raises(RequestInvalid) as refused:  # the child's 422 comes back as raised there
            await parser.parse(bundles[1], "wrong")
        assert list(refused.value.errors) == ["passphrase"]
    finally:
        parser.close()


async def test_a_parse_past_its_deadline_is_killed_and_refused(bundles) -> None:
    parser = CertificateParser(deadline=0.05)
    try:
        started = time.perf_counter()
        with pytest.raises(RequestInvalid) as refused:
            await parser.parse(bundles[1], PASSPHRASE)
        assert list(refused.value.errors) == ["certificate"] and "took more than" in refused.value.message
        assert time.perf_counter() - started < 2.0
    finally:
        parser.close()


async def test_no_more_than_its_slots_run_at_once(bundles) -> None:
    parser = CertificateParser(slots=1, queue_seconds=0.05)
    try:
        slow = asyncio.ensure_future(parser.parse(bundles[1], PASSPHRASE))
        await asyncio.sleep(0.01)
        with pytest.raises(CertificateParserBusy):
            await parser.parse(bundles[0], None)
        assert (await slow).subject
        assert (await parser.parse(bundles[0], None)).subject  # the slot is free again
    finally:
        parser.close()


async def test_a_caller_that_leaves_keeps_its_slot_until_the_child_is_gone(bundles) -> None:
    parser = CertificateParser(slots=1, queue_seconds=0.05)
    try:
        slow = asyncio.ensure_future(parser.parse(bundles[1], PASSPHRASE))
        await asyncio.sleep(0.01)
        slow.cancel()
        with pytest.raises(CertificateParserBusy):  # its child still runs: no room for another
            await parser.parse(bundles[0], None)
        parser.queue_seconds = 10.0
        assert (await parser.parse(bundles[0], None)).subject
    finally:
        parser.close()
