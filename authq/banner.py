"""What ``authq up`` prints once it is ready: where the API, its docs and its metrics are and,
with ``--demo``, a first thing to try (contract §13) that needs nothing but curl."""

from __future__ import annotations

from pathlib import Path

from tasks.demo import facts


def ready_lines(base: str, key_file: Path, demo: bool, public_url: str, connect_url: str | None = None) -> list[str]:
    lines = [f"authq: ready at {base}  (API under {base}/api/v1; Ctrl-C stops everything)",
             f"  API:     {base}/api/v1",
             f"  docs:    {base}/api/docs  (OpenAPI: {base}/api/openapi.json)",
             f"  metrics: {base}/metrics"]
    if not demo:
        return lines
    key = f"KEY=$(cat {key_file})" if key_file.exists() else "KEY=<an API key of yours>"
    field = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"data\"][\"{}\"])'"
    body = ('{"authentication_implementation_id": "demo-basic", "session_id": "\'$SESSION\'", '
            '"timezone": "UTC", "date_format": "Y-m-d", "rate_limit_unit": "second", "rate_limit_duration": 5, '
            f'"variables": [{{"key": "username", "value": "{facts.USERNAME}"}}, '
            f'{{"key": "password", "value": "{facts.PASSWORD}"}}]}}')
    lines += [
        f"  demo:    {public_url}{facts.PREFIX}/  (user {facts.USERNAME}/{facts.PASSWORD}; "
        "catalog: demo-oauth2, demo-client-credentials, demo-basic, demo-woo)",
    ]
    if connect_url:
        lines += [f"  connect: {connect_url}",
                  "           (open it in a browser: the connect page, offering the demo's systems, for 24 h)"]
    lines += [
        "",
        "Try it (no internet needed): a session, demo-basic authorised in it, the demo API called through the proxy:",
        "",
        f"  {key}",
        f"  SESSION=$(curl -s -X POST {base}/api/v1/sessions -H \"Authorization: $KEY\" "
        "-H 'Content-Type: application/json' \\",
        "    -d '{\"end_user_id\": \"me\", \"allowed_implementations\": [\"demo-basic\"]}' | "
        + field.format("id") + ")",
        f"  CONNECTOR=$(curl -s -X POST {base}/api/v1/oauth/authorise -H \"Authorization: $KEY\" "
        "-H 'Content-Type: application/json' -H 'Prefer: wait=10' \\",
        f"    -d '{body}' | " + field.format("connector_id") + ")",
        f"  curl -s {base}/api/v1/connectors/$CONNECTOR -H \"Authorization: $KEY\"",
        f"  curl -s {base}/api/v1/connectors/$CONNECTOR/proxy/me -H \"Authorization: $KEY\"",
    ]
    return lines
