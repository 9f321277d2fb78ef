"""Client certificates: parsed and checked on upload (in a child process, ``api/certificate_parser.py``);
the key is sealed and never shown."""

from __future__ import annotations

from aiohttp import web

from api.auth import tenant
from api.body import json_body
from api.certificate_parser import CertificateParser
from api.path_ids import path_id
from api.responses import error, one, page_params, paged
from api.typedefs import BOX, STORE
from tasks.errors import CertificateParserBusy, NotFound
from tasks.model.bodies import CertificateIn
from tasks.model.records import Certificate, new_id, utcnow
from tasks.provider.certificates import refuse_costly_key
from tasks.validation.field_errors import parse

PARSER = web.AppKey("certificate_parser", CertificateParser)


def setup_certificates(app: web.Application) -> None:
    app[PARSER] = CertificateParser()

    async def close(app: web.Application) -> None:
        app[PARSER].close()

    app.on_cleanup.append(close)


async def create(request: web.Request) -> web.StreamResponse:
    body = parse(CertificateIn, await json_body(request))
    refuse_costly_key(body.certificate)  # at once, here: a few DER fields, never the derivation
    try:
        parsed = await request.app[PARSER].parse(body.certificate, body.passphrase)
    except CertificateParserBusy:
        return error(503, "Certificates are being parsed for other requests; retry in a few seconds.",
                     headers={"Retry-After": "5"})
    box = request.app[BOX]
    # The key as opened, sealed: its passphrase is not kept, and no TLS set-up derives it again.
    cert = Certificate(
        id=new_id("crt"), tenant=tenant(request), name=body.name, connector_id=body.connector_id,
        certificate_pem=parsed.certificate_pem, key_sealed=box.seal(parsed.key_pem),
        key_was_encrypted=parsed.encrypted, subject=parsed.subject, issuer=parsed.issuer,
        fingerprint_sha256=parsed.fingerprint_sha256,
        not_before=parsed.not_before, not_after=parsed.not_after, created_at=utcnow(),
    )
    await request.app[STORE].save_certificate(cert)
    return one(cert.view(), status=201, headers={"Location": f"/api/v1/certificates/{cert.id}"})


async def index(request: web.Request) -> web.StreamResponse:
    page, per_page = page_params(request)
    items, total = await request.app[STORE].certificates(tenant(request), page, per_page)
    return paged(request, [c.view() for c in items], total, page, per_page)


async def show(request: web.Request) -> web.StreamResponse:
    cert = await request.app[STORE].certificate(tenant(request), path_id(request, "certificate"))
    if cert is None:
        raise NotFound("Certificate")
    return one(cert.view())


async def delete(request: web.Request) -> web.StreamResponse:
    if not await request.app[STORE].delete_certificate(tenant(request), path_id(request, "certificate")):
        raise NotFound("Certificate")
    return web.Response(status=204)
