"""The session's leak check must find a leaked private key, and must not take the public key a
certificate carries in clear for one (which made the check fail by chance on some keys)."""

from __future__ import annotations

import base64
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.support.leakcheck import find_leaks, pem_secrets


def self_signed(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, common_name: str) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(("make", "keys"), [(lambda: ec.generate_private_key(ec.SECP256R1()), 48), (rsa_key, 6)],
                         ids=["ec", "rsa"])
def test_a_key_pem_is_found_and_its_certificate_is_not(make, keys: int) -> None:  # type: ignore[no-untyped-def]
    # Whether the public key's base64 in a certificate lines up with the key PEM's depends on
    # where the key sits in the certificate: a subject of each length from 1 to 48 characters
    # puts it at every offset of a 48-byte PEM line, where the old rule (every line of the key
    # PEM is a secret) found the EC point in the certificate for some of them.
    for length in range(1, keys + 1):
        key = make()
        pem = key_pem(key)
        secrets = pem_secrets(pem)
        assert secrets
        assert find_leaks([("certificate", self_signed(key, "c" * length))], secrets) == []
        der_base64 = base64.b64encode(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption())).decode()
        for leaked in (pem, der_base64, pem.replace("\n", "\\n")):
            assert find_leaks([("leak", leaked.replace("PRIVATE KEY-----", ""))], secrets)
