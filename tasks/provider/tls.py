"""TLS for outbound calls: trusted CAs, and the connector's client certificate (mTLS).

``ssl`` can only load a certificate chain from files. The private key is written to a
private temporary directory *re-encrypted* under a one-time random password, loaded, and
the directory removed at once: the key never touches disk in the clear, nor a shared path.
The stored key was opened once, at upload: setting up TLS derives no key from a passphrase.

Building a context costs tens of milliseconds of CPU (``create_default_context`` loads the
system's CAs), more than all the rest of a job: ``CONTEXTS`` builds one per CA bundle and
client certificate and shares it (an ``SSLContext`` is safe to share between connections and
threads; nothing authq or httpcore does to it differs between requests).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import ssl
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from tasks.errors import ErrorCode, JobFailed, RequestInvalid
from tasks.model.records import Certificate
from tasks.provider.certificates import refuse_costly_key
from tasks.security.sealing import SecretBox


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def ssl_context(ca_bundle: Path | None, certificate: Certificate | None = None,
                box: SecretBox | None = None) -> ssl.SSLContext:
    """The context for a connector's outbound calls: shared, built on first use (``CONTEXTS``)."""
    return CONTEXTS.get(ca_bundle, certificate, box)


def build_ssl_context(ca_bundle: Path | None, certificate: Certificate | None = None,
                      box: SecretBox | None = None) -> ssl.SSLContext:
    """A new context: the system's CAs (or ``ca_bundle``'s too) and the client certificate."""
    context = ssl.create_default_context()
    if ca_bundle is not None:
        context.load_verify_locations(cafile=str(ca_bundle))
    if certificate is not None:
        assert box is not None
        load_client_certificate(context, certificate, box)
    return context


class TlsContexts:
    """Contexts by (CA bundle as it is on disk now, client certificate as stored), the
    ``size`` used last kept. A replaced bundle file or a new upload is a new key, hence a new
    context; the old one is dropped when it falls out. A failure (``JobFailed``) is not kept."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._contexts: OrderedDict[tuple[object, ...], ssl.SSLContext] = OrderedDict()

    @staticmethod
    def _key(ca_bundle: Path | None, certificate: Certificate | None) -> tuple[object, ...]:
        bundle: tuple[object, ...] = ()
        if ca_bundle is not None:
            try:
                stat = ca_bundle.stat()
                bundle = (str(ca_bundle), stat.st_mtime_ns, stat.st_size)
            except OSError:
                bundle = (str(ca_bundle),)  # building it raises the error, which is not kept
        if certificate is None:
            return (bundle,)
        stored = "\0".join((certificate.certificate_pem, certificate.key_sealed, certificate.passphrase_sealed or ""))
        return (bundle, certificate.tenant, certificate.id, hashlib.sha256(stored.encode()).hexdigest())

    def kept(self, ca_bundle: Path | None, certificate: Certificate | None = None) -> ssl.SSLContext | None:
        """The context already built for these, or None (nothing is built here: cheap enough for
        an event loop, where ``get`` may read files and open a key)."""
        key = self._key(ca_bundle, certificate)
        with self._lock:
            context = self._contexts.get(key)
            if context is not None:
                self._contexts.move_to_end(key)
            return context

    def get(self, ca_bundle: Path | None, certificate: Certificate | None = None,
            box: SecretBox | None = None) -> ssl.SSLContext:
        context = self.kept(ca_bundle, certificate)
        if context is not None:
            return context
        key = self._key(ca_bundle, certificate)
        context = build_ssl_context(ca_bundle, certificate, box)  # outside the lock: it is slow
        with self._lock:
            self._contexts[key] = context
            self._contexts.move_to_end(key)
            while len(self._contexts) > self.size:
                self._contexts.popitem(last=False)
        return context


CONTEXTS = TlsContexts()


def _private_key(certificate: Certificate, box: SecretBox) -> Any:
    """The key, opened. Stored opened since upload: no key derivation here. A record stored
    before that keeps the key as uploaded and its passphrase: opened with them, once its
    derivation's cost is checked as an upload's is (a costlier one fails, never runs)."""
    pem = box.open(certificate.key_sealed)
    passphrase = box.open(certificate.passphrase_sealed) if certificate.passphrase_sealed else None
    if passphrase is not None:
        try:
            refuse_costly_key(pem)
        except RequestInvalid:
            raise JobFailed(ErrorCode.CERTIFICATE_INVALID, "The stored private key's encryption is far costlier to "
                            "open than OpenSSL's defaults; upload the certificate again.", "certificate_id") from None
    return serialization.load_pem_private_key(pem.encode(), password=passphrase.encode() if passphrase else None)


def private_key_of(certificate: Certificate, box: SecretBox) -> Any:
    """The certificate's private key, opened (a ``private_key_jwt`` assertion signs with it)."""
    return _private_key(certificate, box)


def _one_time_pem(key: Any, password: bytes) -> bytes:
    """The key under a random one-time password, for ``ssl`` to read back at once. OpenSSL's
    traditional form (one MD5 round: nothing to derive; the password is 256 random bits);
    PKCS#8 for key types that form cannot hold (Ed25519, Ed448)."""
    try:
        return bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.BestAvailableEncryption(password)))
    except ValueError:
        return bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(password)))


def load_client_certificate(context: ssl.SSLContext, certificate: Certificate, box: SecretBox) -> None:
    try:
        key = _private_key(certificate, box)
    except (ValueError, TypeError):
        raise JobFailed(ErrorCode.CERTIFICATE_INVALID, "The stored private key no longer opens; upload the certificate "
                        "again.", "certificate_id") from None
    one_time = secrets.token_urlsafe(32).encode()
    sealed_pem = _one_time_pem(key, one_time)
    with tempfile.TemporaryDirectory(prefix="authq-tls-") as private_dir:  # mode 0700, this process only
        cert_file, key_file = Path(private_dir) / "cert.pem", Path(private_dir) / "key.pem"
        _write_private(cert_file, certificate.certificate_pem.encode())
        _write_private(key_file, sealed_pem)
        try:
            context.load_cert_chain(str(cert_file), str(key_file), password=one_time)
        except ssl.SSLError:
            raise JobFailed(ErrorCode.CERTIFICATE_INVALID, "The certificate and key could not be loaded for TLS.",
                            "certificate_id") from None
