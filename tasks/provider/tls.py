"""TLS for outbound calls: trusted CAs, and the connector's client certificate (mTLS).

``ssl`` can only load a certificate chain from files. The private key is written to a
private temporary directory *re-encrypted* under a one-time random password, loaded, and
the directory removed at once: the key never touches disk in the clear, nor a shared path.
"""

from __future__ import annotations

import os
import secrets
import ssl
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from tasks.errors import ErrorCode, JobFailed
from tasks.model.records import Certificate
from tasks.security.sealing import SecretBox


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def ssl_context(ca_bundle: Path | None, certificate: Certificate | None = None,
                box: SecretBox | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_bundle is not None:
        context.load_verify_locations(cafile=str(ca_bundle))
    if certificate is not None:
        assert box is not None
        load_client_certificate(context, certificate, box)
    return context


def load_client_certificate(context: ssl.SSLContext, certificate: Certificate, box: SecretBox) -> None:
    passphrase = box.open(certificate.passphrase_sealed) if certificate.passphrase_sealed else None
    try:
        key = serialization.load_pem_private_key(box.open(certificate.key_sealed).encode(),
                                                 password=passphrase.encode() if passphrase else None)
    except (ValueError, TypeError):
        raise JobFailed(ErrorCode.CERTIFICATE_INVALID, "The stored private key no longer opens; upload the certificate "
                        "again.", "certificate_id") from None
    one_time = secrets.token_urlsafe(32).encode()
    sealed_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.BestAvailableEncryption(one_time))
    with tempfile.TemporaryDirectory(prefix="authq-tls-") as private_dir:  # mode 0700, this process only
        cert_file, key_file = Path(private_dir) / "cert.pem", Path(private_dir) / "key.pem"
        _write_private(cert_file, certificate.certificate_pem.encode())
        _write_private(key_file, sealed_pem)
        try:
            context.load_cert_chain(str(cert_file), str(key_file), password=one_time)
        except ssl.SSLError:
            raise JobFailed(ErrorCode.CERTIFICATE_INVALID, "The certificate and key could not be loaded for TLS.",
                            "certificate_id") from None
