"""Client certificates (contract §5 "Records the lookups need", §3 secrets).

Proven here, with real PEM made by ``trustme`` (a throwaway CA) and by ``cryptography``
directly (expired certificates, encrypted keys, keys that do not match):

- ``tasks.provider.certificates.parse_certificate`` accepts a certificate with its RSA or EC key, in
  PKCS#8 or traditional OpenSSL form, plain or encrypted (with the right passphrase), in
  either order and with a chain; it describes the leaf (subject, issuer, the SHA-256 of
  its DER, validity in UTC); it stores an expired certificate; and it rejects, at the
  contract's field, garbage, a bundle without key or certificate, a key that does not
  match, a wrong or missing passphrase.
- ``POST|GET /api/v1/certificates`` and ``GET|DELETE /api/v1/certificates/{id}`` answer
  201 + ``Location``, show the description with ISO-8601 ``Z`` times, never the key (nor
  any base64 slice of it) nor the passphrase, page the list, delete (204, then 404), and
  answer 404 to another tenant.
- The record in Redis holds the key only sealed (Fernet), as opened at upload: the sealed key
  opens, with the service's secret key, to the key itself; the passphrase is not kept.
- Opening an encrypted key costs what its key derivation says: a cost far above OpenSSL's
  defaults is refused at ``passphrase`` from the key's parameters, before any derivation;
  an accepted slow one is parsed in a child process while ``/healthz`` keeps answering.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
import trustme
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tasks.errors import RequestInvalid
from tasks.provider.certificates import parse_certificate
from tasks.storage import schema
from tests.support.leakcheck import remember_pem, remember_secret
from tests.support.pkcs8 import pbes1_key_pem, pbkdf2_key_pem, scrypt_key_pem

URL = "/api/v1/certificates"
PASSPHRASE = "correct-horse-battery-staple-7Qz"
remember_secret(PASSPHRASE)
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


# --- real PEM material ---------------------------------------------------------------

def _key_pem(key, fmt=serialization.PrivateFormat.PKCS8, passphrase: str | None = None) -> str:
    encryption = (serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
                  else serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, fmt, encryption).decode()
    remember_pem(pem)  # the session's leak check looks for its lines in Redis and the logs
    return pem


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class Issued:
    """A leaf certificate and its private key (as objects and as PEM)."""

    def __init__(self, cert: x509.Certificate, key, chain_pem: str = "") -> None:
        self.cert = cert
        self.key = key
        self.cert_pem = _cert_pem(cert)
        self.chain_pem = chain_pem  # the issuer's certificate(s), if any

    def key_pem(self, fmt=serialization.PrivateFormat.PKCS8, passphrase: str | None = None) -> str:
        return _key_pem(self.key, fmt, passphrase)

    def bundle(self, **key_options) -> str:
        return self.cert_pem + self.key_pem(**key_options)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _from_trustme(ca: trustme.CA, name: str) -> Issued:
    leaf = ca.issue_cert(name)
    cert = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    return Issued(cert, key, chain_pem=ca.cert_pem.bytes().decode())


@pytest.fixture(scope="module")
def rsa_ca() -> trustme.CA:
    return trustme.CA(key_type=trustme.KeyType.RSA)


@pytest.fixture(scope="module")
def rsa_leaf(rsa_ca: trustme.CA) -> Issued:
    return _from_trustme(rsa_ca, "client-rsa.example.test")


@pytest.fixture(scope="module")
def ec_leaf() -> Issued:
    return _from_trustme(trustme.CA(key_type=trustme.KeyType.ECDSA), "client-ec.example.test")


def _self_signed(not_before: datetime, not_after: datetime, common_name: str) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before)
            .not_valid_after(not_after).sign(key, hashes.SHA256()))
    return Issued(cert, key)


@pytest.fixture(scope="module")
def expired_leaf() -> Issued:
    now = datetime.now(UTC)
    return _self_signed(now - timedelta(days=400), now - timedelta(days=35), "expired.example.test")


@pytest.fixture(scope="module")
def other_rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _base64_body(pem: str) -> str:
    return "".join(line for line in pem.splitlines()
                   if line and not line.startswith(("-----", "Proc-Type", "DEK-Info")))


def assert_no_key_material(text: str, key_pem: str, passphrase: str | None = None) -> None:
    """``text`` holds neither the key PEM, nor any 24-char slice of its base64, nor the passphrase."""
    assert "PRIVATE KEY" not in text
    assert key_pem.strip() not in text
    body = _base64_body(key_pem)
    width = 24
    leaked = [body[i:i + width] for i in range(len(body) - width + 1) if body[i:i + width] in text]
    assert not leaked, f"response holds slices of the private key: {leaked[:3]}"
    if passphrase:
        assert passphrase not in text


def errors_of(exc: pytest.ExceptionInfo[RequestInvalid]) -> dict[str, list[str]]:
    return exc.value.errors


# --- parse_certificate ---------------------------------------------------------------

class TestParseCertificate:
    def test_rsa_certificate_and_key_describe_the_leaf(self, rsa_leaf: Issued) -> None:
        parsed = parse_certificate(rsa_leaf.bundle(), None)
        assert parsed.subject == rsa_leaf.cert.subject.rfc4514_string()
        assert parsed.issuer == rsa_leaf.cert.issuer.rfc4514_string()
        assert parsed.subject != parsed.issuer  # issued by the throwaway CA, not self-signed
        assert parsed.fingerprint_sha256.replace(":", "").lower() == rsa_leaf.sha256
        assert parsed.not_before == rsa_leaf.cert.not_valid_before_utc
        assert parsed.not_after == rsa_leaf.cert.not_valid_after_utc
        assert parsed.not_before.tzinfo is not None and parsed.not_before.utcoffset() == timedelta(0)
        assert x509.load_pem_x509_certificate(parsed.certificate_pem.encode()) == rsa_leaf.cert
        assert "PRIVATE KEY" not in parsed.certificate_pem

    def test_ec_key_works(self, ec_leaf: Issued) -> None:
        parsed = parse_certificate(ec_leaf.bundle(), None)
        assert parsed.fingerprint_sha256.replace(":", "").lower() == ec_leaf.sha256

    @pytest.mark.parametrize("fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL],
                             ids=["pkcs8", "traditional"])
    def test_plain_key_in_either_format(self, rsa_leaf: Issued, fmt) -> None:
        assert parse_certificate(rsa_leaf.bundle(fmt=fmt), None).subject

    @pytest.mark.parametrize("fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL],
                             ids=["pkcs8", "traditional"])
    def test_encrypted_key_opens_with_its_passphrase(self, rsa_leaf: Issued, fmt) -> None:
        bundle = rsa_leaf.bundle(fmt=fmt, passphrase=PASSPHRASE)
        assert "ENCRYPTED" in bundle
        parsed = parse_certificate(bundle, PASSPHRASE)
        assert parsed.fingerprint_sha256.replace(":", "").lower() == rsa_leaf.sha256

    @pytest.mark.parametrize("fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL],
                             ids=["pkcs8", "traditional"])
    def test_wrong_passphrase_is_rejected_at_passphrase(self, rsa_leaf: Issued, fmt) -> None:
        with pytest.raises(RequestInvalid) as exc:
            parse_certificate(rsa_leaf.bundle(fmt=fmt, passphrase=PASSPHRASE), "not-the-passphrase")
        assert list(errors_of(exc)) == ["passphrase"]

    @pytest.mark.parametrize("missing", [None, ""], ids=["none", "empty"])
    def test_missing_passphrase_for_encrypted_key_is_rejected_at_passphrase(self, ec_leaf: Issued, missing) -> None:
        with pytest.raises(RequestInvalid) as exc:
            parse_certificate(ec_leaf.bundle(passphrase=PASSPHRASE), missing)
        assert list(errors_of(exc)) == ["passphrase"]

    def test_key_before_certificate_and_a_chain(self, rsa_leaf: Issued) -> None:
        bundle = rsa_leaf.key_pem() + rsa_leaf.cert_pem + rsa_leaf.chain_pem
        parsed = parse_certificate(bundle, None)
        assert parsed.fingerprint_sha256.replace(":", "").lower() == rsa_leaf.sha256
        assert parsed.certificate_pem.count("BEGIN CERTIFICATE") == 2

    def test_key_that_does_not_match_is_rejected_at_certificate(self, rsa_leaf: Issued, other_rsa_key) -> None:
        with pytest.raises(RequestInvalid) as exc:
            parse_certificate(rsa_leaf.cert_pem + _key_pem(other_rsa_key), None)
        assert list(errors_of(exc)) == ["certificate"]
        assert "match" in errors_of(exc)["certificate"][0]

    def test_key_of_another_type_does_not_match(self, rsa_leaf: Issued, ec_leaf: Issued) -> None:
        with pytest.raises(RequestInvalid) as exc:
            parse_certificate(rsa_leaf.cert_pem + ec_leaf.key_pem(), None)
        assert list(errors_of(exc)) == ["certificate"]

    @pytest.mark.parametrize("bundle", [
        "garbage",
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    ], ids=["garbage", "corrupt-certificate-without-key"])
    def test_garbage_is_rejected_at_certificate(self, bundle: str) -> None:
        with pytest.raises(RequestInvalid) as exc:
            parse_certificate(bundle, None)
        assert list(errors_of(exc)) == ["certificate"]

    def test_corrupt_certificate_block_is_rejected_at_certificate(self, rsa_leaf: Issued) -> None:
        corrupt = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
        with pytest.raises(RequestInvalid) as exc:
            parse_certificate(corrupt + rsa_leaf.key_pem(), None)
        assert list(errors_of(exc)) == ["certificate"]

    def test_corrupt_key_block_is_rejected_at_certificate(self, rsa_leaf: Issued) -> None:
        corrupt = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
        with pytest.raises(RequestInvalid) as exc:
            parse_certificate(rsa_leaf.cert_pem + corrupt, None)
        assert list(errors_of(exc)) == ["certificate"]

    def test_certificate_without_key_is_rejected_at_certificate(self, rsa_leaf: Issued) -> None:
        with pytest.raises(RequestInvalid) as exc:
            parse_certificate(rsa_leaf.cert_pem, None)
        assert list(errors_of(exc)) == ["certificate"]
        assert "private key" in errors_of(exc)["certificate"][0]

    def test_key_without_certificate_is_rejected_at_certificate(self, rsa_leaf: Issued) -> None:
        with pytest.raises(RequestInvalid) as exc:
            parse_certificate(rsa_leaf.key_pem(), None)
        assert list(errors_of(exc)) == ["certificate"]

    def test_expired_certificate_is_accepted(self, expired_leaf: Issued) -> None:
        parsed = parse_certificate(expired_leaf.bundle(), None)
        assert parsed.not_after < datetime.now(UTC)
        assert parsed.subject == parsed.issuer == "CN=expired.example.test"


# --- the endpoints -------------------------------------------------------------------

async def _create(client, tenant, bundle: str, **fields) -> dict:
    answer = await client.post(URL, json={"certificate": bundle, **fields}, headers=tenant.headers)
    text = await answer.text()
    assert answer.status == 201, text
    data = json.loads(text)["data"]
    assert answer.headers["Location"] == f"{URL}/{data['id']}"
    return data


async def _rejected(client, tenant, body: dict) -> dict[str, list[str]]:
    answer = await client.post(URL, json=body, headers=tenant.headers)
    text = await answer.text()
    assert answer.status == 422, text
    payload = json.loads(text)
    assert payload["message"]
    return payload["errors"]


async def test_create_shows_the_description_and_never_the_key(client, tenant, rsa_leaf: Issued) -> None:
    key_pem = rsa_leaf.key_pem()
    answer = await client.post(URL, json={"certificate": rsa_leaf.cert_pem + key_pem, "name": "Acme mTLS",
                                          "connector_id": "con_123"}, headers=tenant.headers)
    text = await answer.text()
    assert answer.status == 201, text
    data = json.loads(text)["data"]
    assert answer.headers["Location"] == f"{URL}/{data['id']}"
    assert isinstance(data["id"], str) and data["id"]
    assert data["name"] == "Acme mTLS" and data["connector_id"] == "con_123"
    assert data["subject"] == rsa_leaf.cert.subject.rfc4514_string()
    assert data["issuer"] == rsa_leaf.cert.issuer.rfc4514_string()
    assert data["fingerprint_sha256"].replace(":", "").lower() == rsa_leaf.sha256
    for field, expected in (("not_before", rsa_leaf.cert.not_valid_before_utc),
                            ("not_after", rsa_leaf.cert.not_valid_after_utc)):
        assert ISO_Z.match(data[field]), data[field]
        assert datetime.fromisoformat(data[field].replace("Z", "+00:00")) == expected
    assert ISO_Z.match(data["created_at"])
    assert_no_key_material(text, key_pem)

    # The single GET and the list show the same, and no more.
    shown = await client.get(f"{URL}/{data['id']}", headers=tenant.headers)
    shown_text = await shown.text()
    assert shown.status == 200, shown_text
    assert json.loads(shown_text)["data"] == data
    assert_no_key_material(shown_text, key_pem)
    listed = await client.get(URL, headers=tenant.headers)
    listed_text = await listed.text()
    assert listed.status == 200, listed_text
    assert json.loads(listed_text)["data"] == [data]
    assert_no_key_material(listed_text, key_pem)


async def test_ec_key_works(client, tenant, ec_leaf: Issued) -> None:
    data = await _create(client, tenant, ec_leaf.bundle())
    assert data["fingerprint_sha256"].replace(":", "").lower() == ec_leaf.sha256
    assert data["subject"] == ec_leaf.cert.subject.rfc4514_string()


async def test_encrypted_key_with_its_passphrase(client, tenant, rsa_leaf: Issued, redis_client, secret_key) -> None:
    key_pem = rsa_leaf.key_pem(passphrase=PASSPHRASE)
    answer = await client.post(URL, json={"certificate": rsa_leaf.cert_pem + key_pem, "passphrase": PASSPHRASE},
                               headers=tenant.headers)
    text = await answer.text()
    assert answer.status == 201, text
    data = json.loads(text)["data"]
    assert data["fingerprint_sha256"].replace(":", "").lower() == rsa_leaf.sha256
    assert_no_key_material(text, key_pem, PASSPHRASE)
    for path in (f"{URL}/{data['id']}", URL):
        again = await client.get(path, headers=tenant.headers)
        assert again.status == 200
        assert_no_key_material(await again.text(), key_pem, PASSPHRASE)

    # In Redis: the key and the passphrase only sealed; the sealed values open to them.
    raw = redis_client.get(schema.certificate(tenant.name, data["id"]))
    assert raw is not None
    stored = json.loads(raw)
    assert PASSPHRASE not in raw.decode()
    public = {k: v for k, v in stored.items() if k != "certificate_pem"}  # the certificate itself is public
    assert_no_key_material(json.dumps(public), key_pem, PASSPHRASE)
    assert "PRIVATE KEY" not in stored["certificate_pem"]
    # The key was opened once, at upload, and is kept sealed as opened: no passphrase is stored
    # and none is needed again (a worker's TLS set-up derives nothing).
    box = Fernet(secret_key.encode())
    opened = box.decrypt(stored["key_sealed"].encode()).decode()
    remember_pem(opened)
    assert opened.startswith("-----BEGIN PRIVATE KEY-----")
    key = serialization.load_pem_private_key(opened.encode(), password=None)
    assert key.private_numbers() == rsa_leaf.key.private_numbers()
    assert stored["passphrase_sealed"] is None and stored["key_was_encrypted"] is True
    assert data["has_passphrase"] is True


async def test_stored_plain_key_is_sealed(client, tenant, ec_leaf: Issued, redis_client, secret_key) -> None:
    key_pem = ec_leaf.key_pem()
    data = await _create(client, tenant, ec_leaf.cert_pem + key_pem)
    raw = redis_client.get(schema.certificate(tenant.name, data["id"])).decode()
    stored = json.loads(raw)
    assert key_pem.strip() not in raw
    assert_no_key_material(json.dumps({k: v for k, v in stored.items() if k != "certificate_pem"}), key_pem)
    assert Fernet(secret_key.encode()).decrypt(stored["key_sealed"].encode()).decode().strip() == key_pem.strip()
    assert stored["passphrase_sealed"] is None


async def test_wrong_passphrase_is_422_at_passphrase(client, tenant, rsa_leaf: Issued) -> None:
    errors = await _rejected(client, tenant, {"certificate": rsa_leaf.bundle(passphrase=PASSPHRASE),
                                              "passphrase": "wrong-passphrase"})
    assert list(errors) == ["passphrase"]
    assert "wrong-passphrase" not in json.dumps(errors)


async def test_missing_passphrase_is_422_at_passphrase(client, tenant, rsa_leaf: Issued) -> None:
    errors = await _rejected(client, tenant, {"certificate": rsa_leaf.bundle(passphrase=PASSPHRASE)})
    assert list(errors) == ["passphrase"]


async def test_key_that_does_not_match_is_422_at_certificate(client, tenant, rsa_leaf: Issued, other_rsa_key) -> None:
    errors = await _rejected(client, tenant, {"certificate": rsa_leaf.cert_pem + _key_pem(other_rsa_key)})
    assert list(errors) == ["certificate"]


@pytest.mark.parametrize("which", ["text", "garbage", "no-key", "no-certificate", "empty"])
async def test_unparseable_bundle_is_422_at_certificate(client, tenant, rsa_leaf: Issued, which: str) -> None:
    bundle = {"text": "this is not PEM at all",
              "garbage": "-----BEGIN CERTIFICATE-----\nnonsense\n-----END CERTIFICATE-----\n" + rsa_leaf.key_pem(),
              "no-key": rsa_leaf.cert_pem,
              "no-certificate": rsa_leaf.key_pem(),
              "empty": ""}[which]
    errors = await _rejected(client, tenant, {"certificate": bundle})
    assert list(errors) == ["certificate"]


@pytest.mark.parametrize("body", [{}, {"certificate": 42}, {"certificate": None}], ids=["missing", "number", "null"])
async def test_certificate_field_type_is_422_at_certificate(client, tenant, body: dict) -> None:
    errors = await _rejected(client, tenant, body)
    assert list(errors) == ["certificate"]


async def test_passphrase_over_1000_chars_is_422_at_passphrase(client, tenant, rsa_leaf: Issued) -> None:
    errors = await _rejected(client, tenant, {"certificate": rsa_leaf.bundle(), "passphrase": "p" * 1001})
    assert "passphrase" in errors


async def test_passphrase_of_1000_chars_is_allowed(client, tenant, ec_leaf: Issued) -> None:
    long_passphrase = "p" * 1000
    data = await _create(client, tenant, ec_leaf.bundle(passphrase=long_passphrase), passphrase=long_passphrase)
    assert data["fingerprint_sha256"].replace(":", "").lower() == ec_leaf.sha256


async def test_expired_certificate_is_stored(client, tenant, expired_leaf: Issued) -> None:
    data = await _create(client, tenant, expired_leaf.bundle())
    not_after = datetime.fromisoformat(data["not_after"].replace("Z", "+00:00"))
    assert not_after < datetime.now(UTC)
    assert not_after == expired_leaf.cert.not_valid_after_utc
    shown = await client.get(f"{URL}/{data['id']}", headers=tenant.headers)
    assert shown.status == 200


async def test_list_pages(client, tenant, rsa_leaf: Issued, ec_leaf: Issued, expired_leaf: Issued) -> None:
    made = [await _create(client, tenant, leaf.bundle(), name=f"cert {i}")
            for i, leaf in enumerate((rsa_leaf, ec_leaf, expired_leaf))]
    answer = await client.get(URL, params={"per_page": 2}, headers=tenant.headers)
    assert answer.status == 200
    first = await answer.json()
    assert len(first["data"]) == 2
    assert first["meta"]["current_page"] == 1 and first["meta"]["per_page"] == 2
    assert first["meta"]["total"] == 3 and first["meta"]["last_page"] == 2
    assert first["links"]["prev"] is None and first["links"]["next"]
    answer = await client.get(first["links"]["next"], headers=tenant.headers)
    assert answer.status == 200
    second = await answer.json()
    assert second["meta"]["current_page"] == 2 and len(second["data"]) == 1
    assert second["links"]["next"] is None and second["links"]["prev"]
    assert sorted(c["id"] for c in first["data"] + second["data"]) == sorted(c["id"] for c in made)
    answer = await client.get(URL, params={"page": 10**19}, headers=tenant.headers)
    assert answer.status == 200, await answer.text()
    assert (await answer.json())["data"] == []


@pytest.mark.parametrize("query", [{"per_page": "0"}, {"per_page": "101"}, {"page": "0"}, {"page": "x"}])
async def test_list_paging_out_of_range_is_422(client, tenant, query: dict) -> None:
    answer = await client.get(URL, params=query, headers=tenant.headers)
    assert answer.status == 422
    assert list((await answer.json())["errors"]) == list(query)


async def test_delete_then_gone(client, tenant, ec_leaf: Issued, redis_client) -> None:
    data = await _create(client, tenant, ec_leaf.bundle())
    answer = await client.delete(f"{URL}/{data['id']}", headers=tenant.headers)
    assert answer.status == 204
    assert (await client.get(f"{URL}/{data['id']}", headers=tenant.headers)).status == 404
    assert (await client.delete(f"{URL}/{data['id']}", headers=tenant.headers)).status == 404
    listed = await (await client.get(URL, headers=tenant.headers)).json()
    assert listed["data"] == [] and listed["meta"]["total"] == 0
    assert redis_client.get(schema.certificate(tenant.name, data["id"])) is None


async def test_another_tenant_sees_404(client, tenants, rsa_leaf: Issued) -> None:
    owner, other = tenants
    data = await _create(client, owner, rsa_leaf.bundle())
    shown = await client.get(f"{URL}/{data['id']}", headers=other.headers)
    assert shown.status == 404
    missing = await client.get(f"{URL}/crt_{'0' * 32}", headers=other.headers)
    assert await shown.json() == await missing.json()  # exactly as a missing one
    assert (await client.delete(f"{URL}/{data['id']}", headers=other.headers)).status == 404
    listed = await (await client.get(URL, headers=other.headers)).json()
    assert listed["data"] == [] and listed["meta"]["total"] == 0
    assert (await client.get(f"{URL}/{data['id']}", headers=owner.headers)).status == 200


async def test_needs_an_api_key(client) -> None:
    answer = await client.get(URL)
    assert answer.status == 401
    assert await answer.json() == {"message": "Unauthenticated."}


def test_leaf_is_the_certificate_of_the_key_even_after_its_ca(rsa_leaf: Issued) -> None:
    """A bundle that lists the CA first still describes the key's own certificate, leaf first."""
    parsed = parse_certificate(rsa_leaf.chain_pem + rsa_leaf.cert_pem + rsa_leaf.key_pem(), None)
    assert parsed.fingerprint_sha256.replace(":", "").lower() == rsa_leaf.sha256
    assert parsed.certificate_pem.startswith(rsa_leaf.cert_pem.strip())


async def test_passphrase_for_a_plain_key_is_not_kept(client, tenant, ec_leaf: Issued) -> None:
    """A passphrase the key did not need is neither stored nor reported as present."""
    shown = await _create(client, tenant, ec_leaf.bundle(), passphrase="not-needed")
    assert shown["has_passphrase"] is False


# --- what opening an encrypted key costs ----------------------------------------------

@pytest.fixture(scope="module")
def costly_key(ec_leaf: Issued) -> tuple[str, float]:
    """The leaf's key under PASSPHRASE with 2,000,000 PBKDF2 iterations (twice the most
    accepted), and the seconds one derivation took here (making the key costs one)."""
    started = time.perf_counter()
    pem = pbkdf2_key_pem(ec_leaf.key, PASSPHRASE, 2_000_000)
    return pem, time.perf_counter() - started


@pytest.fixture(scope="module")
def slow_allowed_key(ec_leaf: Issued) -> str:
    """1,000,000 iterations: the most accepted, and slow to open."""
    return pbkdf2_key_pem(ec_leaf.key, PASSPHRASE, 1_000_000)


@pytest.mark.parametrize("passphrase", [PASSPHRASE, "not-the-passphrase"], ids=["right", "wrong"])
async def test_a_key_derivation_far_above_openssls_defaults_is_refused_fast(client, tenant, ec_leaf: Issued,
                                                                           costly_key, passphrase) -> None:
    """422 at ``passphrase``, decided from the key's parameters before any derivation: the
    refusal takes a small part of what deriving once does (with the right passphrase it
    would otherwise be accepted)."""
    key_pem, derive_seconds = costly_key
    started = time.perf_counter()
    errors = await _rejected(client, tenant, {"certificate": ec_leaf.cert_pem + key_pem, "passphrase": passphrase})
    took = time.perf_counter() - started
    assert list(errors) == ["passphrase"] and "2,000,000" in errors["passphrase"][0]
    assert took < derive_seconds / 4, (took, derive_seconds)


@pytest.mark.parametrize("make", [
    lambda key: scrypt_key_pem(key, PASSPHRASE, 2**20, 8, 1, real=False),    # 1 GiB of memory
    lambda key: scrypt_key_pem(key, PASSPHRASE, 2**14, 8, 64, real=False),   # 64 times the work
    lambda key: pbes1_key_pem(200_000_000),
], ids=["scrypt-memory", "scrypt-work", "pkcs12-pbe"])
async def test_other_costly_derivations_are_refused_at_passphrase(client, tenant, ec_leaf: Issued, make) -> None:
    started = time.perf_counter()
    errors = await _rejected(client, tenant, {"certificate": ec_leaf.cert_pem + make(ec_leaf.key),
                                              "passphrase": PASSPHRASE})
    assert list(errors) == ["passphrase"]
    assert time.perf_counter() - started < 1.0


async def test_openssls_own_costs_are_accepted(client, tenant, ec_leaf: Issued) -> None:
    for key_pem in (scrypt_key_pem(ec_leaf.key, PASSPHRASE, 2**14, 8, 1),
                    pbkdf2_key_pem(ec_leaf.key, PASSPHRASE, 2048)):
        data = await _create(client, tenant, ec_leaf.cert_pem + key_pem, passphrase=PASSPHRASE)
        assert data["fingerprint_sha256"].replace(":", "").lower() == ec_leaf.sha256


async def test_healthz_answers_throughout_a_slow_allowed_parse(client, tenant, ec_leaf: Issued,
                                                                slow_allowed_key: str) -> None:
    """The parse runs in a child process: the event loop (and its interpreter) stay free. Were
    it parsed on the loop, one ``/healthz`` would wait for the whole parse: each must take a
    small part of the upload's time (a ratio, not a fixed budget, so a loaded machine does not
    decide it).

    The test session's heap is frozen for the measurement, as ``authq api`` freezes its own at
    start-up (``authq/cli.py``): a full collection of a whole session's objects (100-200 ms) is
    not the parse, and must not decide the test either."""
    gc.collect()
    gc.freeze()
    try:
        await _healthz_throughout_a_parse(client, tenant, ec_leaf, slow_allowed_key)
    finally:
        gc.unfreeze()


async def _healthz_throughout_a_parse(client, tenant, ec_leaf: Issued, slow_allowed_key: str) -> None:  # type: ignore[no-untyped-def]
    upload_started = time.perf_counter()
    upload = asyncio.ensure_future(client.post(URL, json={"certificate": ec_leaf.cert_pem + slow_allowed_key,
                                                          "passphrase": PASSPHRASE}, headers=tenant.headers))
    during = []  # every /healthz asked while the upload was in flight, from its first moment on
    while not upload.done():
        started = time.perf_counter()
        answer = await client.get("/healthz")
        assert answer.status == 200
        during.append(time.perf_counter() - started)
        await asyncio.sleep(0.01)
    answer = await upload
    upload_took = time.perf_counter() - upload_started
    assert answer.status == 201, await answer.text()
    assert max(during) < upload_took / 4, (during, upload_took)
    assert len(during) >= 5, during  # the parse took a while: the loop was asked throughout


async def test_the_stored_key_opens_without_a_passphrase(client, tenant, ec_leaf: Issued, slow_allowed_key: str,
                                                         redis_client, secret_key) -> None:
    """Paid once: what is stored is the key as opened, and it opens, here and in TLS, with no
    passphrase and no key derivation."""
    data = await _create(client, tenant, ec_leaf.cert_pem + slow_allowed_key, passphrase=PASSPHRASE)
    stored = json.loads(redis_client.get(schema.certificate(tenant.name, data["id"])))
    assert stored["passphrase_sealed"] is None
    opened = Fernet(secret_key.encode()).decrypt(stored["key_sealed"].encode())
    remember_pem(opened.decode())
    started = time.perf_counter()
    key = serialization.load_pem_private_key(opened, password=None)
    stored_took = time.perf_counter() - started
    started = time.perf_counter()
    serialization.load_pem_private_key(slow_allowed_key.encode(), password=PASSPHRASE.encode())
    assert stored_took < (time.perf_counter() - started) / 10  # no key derivation left to pay
    assert key.private_numbers() == ec_leaf.key.private_numbers()
    assert data["has_passphrase"] is True


async def test_the_pem_markers_are_read_in_linear_time(client, tenant, ec_leaf: Issued) -> None:
    """Thousands of unclosed ``BEGIN`` lines (a regular expression's worst case) answer at once."""
    bundle = ("-----BEGIN CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\n" * 3000)[:199_000]
    started = time.perf_counter()
    errors = await _rejected(client, tenant, {"certificate": bundle})
    assert list(errors) == ["certificate"] and time.perf_counter() - started < 1.0
