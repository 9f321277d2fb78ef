"""The credentials one proxied request carries (``tasks/flows/request_signing.py``): the fixed
headers of most types; for OAuth 1.0a a signature of this request, verified here with Authlib's
own server-side check (HMAC-SHA1) and recomputed (HMAC-SHA256)."""

from __future__ import annotations

from authlib.oauth1.rfc5849.signature import verify_hmac_sha1
from authlib.oauth1.rfc5849.wrapper import OAuth1Request

from tasks.flows.credentials_for_use import CredentialsForUseView
from tasks.flows.request_signing import request_headers
from tests.support.oauth1_server import verify_hmac_sha256


def _usable(method: str, realm: str = "") -> CredentialsForUseView:
    return {"connector_id": "con_x", "type": "oauth1_token", "expires_at": None, "headers": {}, "query": {},
            "values": {"consumer_key": "ck", "consumer_secret": "cs", "token": "tok", "token_secret": "ts",
                       "signature_method": method, "realm": realm}}


class _Consumer:
    def get_client_secret(self) -> str:
        return "cs"


class _Credential:
    def get_oauth_token_secret(self) -> str:
        return "ts"


def _request(method: str, url: str, headers: dict[str, str], body: dict[str, str] | None = None) -> OAuth1Request:
    request = OAuth1Request(method, url, body, headers)
    request.client, request.credential = _Consumer(), _Credential()
    return request


def test_other_types_carry_their_fixed_headers():
    usable: CredentialsForUseView = {"connector_id": "con_x", "type": "token", "expires_at": None,
                                     "headers": {"X-Auth-Token": "t"}, "query": {}, "values": {"token": "t"}}
    assert request_headers(usable, "GET", "https://x.test/a", None, None) == {"X-Auth-Token": "t"}


def test_a_get_is_signed_over_its_query():
    url = "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest/record/v1/customer?limit=5&q=a%20b"
    headers = request_headers(_usable("HMAC-SHA1", "1234567_SB1"), "GET", url, None, None)
    assert headers["Authorization"].startswith('OAuth realm="1234567_SB1"')
    assert verify_hmac_sha1(_request("GET", url, headers))
    assert not verify_hmac_sha1(_request("GET", url.replace("limit=5", "limit=6"), headers))


def test_a_form_body_is_signed_and_a_streamed_one_is_not():
    url = "https://x.test/api/orders"
    form = "companyName=Acme+%26+Co&n=1"
    signed = request_headers(_usable("HMAC-SHA256"), "POST", url, "application/x-www-form-urlencoded", form.encode())
    ct = {"Content-Type": "application/x-www-form-urlencoded"}
    assert verify_hmac_sha256(_request("POST", url, {**signed, **ct}, {"companyName": "Acme & Co", "n": "1"}))
    assert not verify_hmac_sha256(_request("POST", url, {**signed, **ct}, {"companyName": "Other", "n": "1"}))

    async def stream():  # type: ignore[no-untyped-def]
        yield b"companyName=Acme"
    streamed = request_headers(_usable("HMAC-SHA256"), "POST", url, "application/x-www-form-urlencoded", stream())
    assert verify_hmac_sha256(_request("POST", url, streamed))
