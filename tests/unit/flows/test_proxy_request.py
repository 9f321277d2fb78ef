"""Where a proxied path goes (tasks/flows/proxy_request.py): always under the base URL, or
refused; and which headers pass each way."""

from __future__ import annotations

import pytest

from tasks.errors import PathRefused
from tasks.flows.proxy_request import headers_to_return, headers_to_send, provider_url

BASE = "https://api.example.com/v1"


@pytest.mark.parametrize(("path", "query", "expected"), [
    ("orders/1.json", "", "https://api.example.com/v1/orders/1.json"),
    ("orders", "status=open&q=%20a", "https://api.example.com/v1/orders?status=open&q=%20a"),
    ("a%20b/c", "", "https://api.example.com/v1/a%20b/c"),
    ("http:/other.example/x", "", "https://api.example.com/v1/http:/other.example/x"),
    ("", "", "https://api.example.com/v1/"),
])
def test_paths_stay_under_the_base(path: str, query: str, expected: str) -> None:
    assert str(provider_url(BASE, path, query)) == expected


@pytest.mark.parametrize("path", ["../x", "a/../../x", "%2e%2e/x", "%2E%2E%2Fx", "a%2fb", "a%5Cb", "a\\b", ".",
                                  "a/./b", "/x", "//evil.example/x", "a//b", "http://evil.example/x"])
def test_escapes_are_refused(path: str) -> None:
    with pytest.raises(PathRefused):
        provider_url(BASE, path, "")


def test_a_base_with_a_trailing_slash_or_a_port() -> None:
    assert str(provider_url("http://127.0.0.1:8080/base/", "x", "")) == "http://127.0.0.1:8080/base/x"
    assert str(provider_url("https://shop.example", "admin/x", "")) == "https://shop.example/admin/x"


def test_headers_each_way() -> None:
    sent = headers_to_send([("Host", "authq"), ("Authorization", "Bearer key"), ("Cookie", "s=1"),
                            ("X-Authq-Max-Wait", "3"), ("Connection", "keep-alive, X-Mine"), ("X-Mine", "1"),
                            ("Transfer-Encoding", "chunked"), ("Accept", "application/json"), ("X-Other", "2")])
    assert sent == [("Accept", "application/json"), ("X-Other", "2")]
    back = headers_to_return([("Content-Type", "text/plain"), ("Keep-Alive", "timeout=5"), ("Connection", "X-Hop"),
                              ("X-Hop", "1"), ("Set-Cookie", "a=1")])
    assert back == [("Content-Type", "text/plain"), ("Set-Cookie", "a=1")]
