"""``authq keys create / list / revoke`` (contract §2, §3) against the session's Redis, and what
the API makes of the keys: their scopes hold, a revoked key answers 401, the list shows ids,
tenants, scopes, creation and last use but never a key, and the log has each creation and
revocation."""

from __future__ import annotations

import os
import re
import secrets
import time

import pytest

from authq.cli import main
from tasks.model.api_keys import static_key_id
from tasks.storage import schema
from tests.support.leakcheck import remember_secret


@pytest.fixture
def admin_env(monkeypatch, redis_server, tenant) -> None:  # type: ignore[no-untyped-def]
    """The environment ``authq keys`` runs in beside a running API: its Redis, and its static keys."""
    for name in [n for n in os.environ if n.startswith("AUTHQ_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AUTHQ_REDIS_URL", redis_server.url)
    monkeypatch.setenv("AUTHQ_API_KEYS", f"{tenant.name}:{tenant.key}")


def run(capsys, *argv: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def created(capsys, tenant: str, *more: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    code, out, _ = run(capsys, "keys", "create", "--tenant", tenant, *more)
    assert code == 0, out
    key_id = re.search(r"^key id:\s+(key_[0-9a-f]{32})$", out, re.M)
    raw = re.search(r"^api key:\s+(\S+)$", out, re.M)
    assert key_id and raw, out
    remember_secret(raw.group(1))
    return key_id.group(1), raw.group(1)


async def test_created_keys_have_their_scopes_and_a_revoked_one_answers_401(  # type: ignore[no-untyped-def]
        client, capsys, admin_env, tenant) -> None:
    manage_id, manage = created(capsys, tenant.name)                       # default: manage,proxy
    proxy_id, proxy = created(capsys, tenant.name, "--scopes", "proxy")
    assert (await client.get("/api/v1/connectors", headers={"Authorization": manage})).status == 200
    answer = await client.get("/api/v1/connectors", headers={"Authorization": f"Bearer {proxy}"})
    assert answer.status == 403 and await answer.json() == {"message": "This API key lacks the manage scope."}

    code, out, _ = run(capsys, "keys", "revoke", manage_id)
    assert code == 0 and manage_id in out
    answer = await client.get("/api/v1/connectors", headers={"Authorization": manage})
    assert answer.status == 401 and await answer.json() == {"message": "Unauthenticated."}
    code, _, err = run(capsys, "keys", "revoke", manage_id)
    assert code == 2 and "not found" in err

    answer = await client.get("/api/v1/audit-events", headers=tenant.headers)
    assert answer.status == 200, await answer.text()
    events = [(e["type"], e["details"]) for e in (await answer.json())["data"]]
    assert events == [("api_key.revoked", {"api_key_id": manage_id, "scopes": ["manage", "proxy"]}),
                      ("api_key.created", {"api_key_id": proxy_id, "scopes": ["proxy"]}),
                      ("api_key.created", {"api_key_id": manage_id, "scopes": ["manage", "proxy"]})]


async def test_the_list_shows_every_key_of_a_tenant_with_its_last_use_and_never_a_key(  # type: ignore[no-untyped-def]
        client, capsys, admin_env, tenant, tenants) -> None:
    used_id, used = created(capsys, tenant.name, "--scopes", "manage,credentials")
    idle_id, idle = created(capsys, tenant.name)
    other_id, _ = created(capsys, tenants[1].name)
    assert (await client.get("/api/v1/connectors", headers={"Authorization": used})).status == 200
    assert (await client.get("/api/v1/connectors", headers=tenant.headers)).status == 200

    code, out, _ = run(capsys, "keys", "list", "--tenant", tenant.name)
    assert code == 0
    header, *rows = out.strip().splitlines()
    assert header.split() == ["ID", "TENANT", "SCOPES", "CREATED", "LAST", "USED"]
    table = {row.split()[0]: row.split()[1:] for row in rows}
    static_id = static_key_id(tenant.key)
    assert set(table) == {static_id, used_id, idle_id}                    # another tenant's are not listed
    assert table[static_id][:3] == [tenant.name, "manage,proxy", "AUTHQ_API_KEYS"]
    assert table[used_id][:2] == [tenant.name, "manage,credentials"]
    assert table[used_id][3].endswith("Z") and table[static_id][3].endswith("Z")   # used just now
    assert table[idle_id][3] == "never"
    for raw in (used, idle, tenant.key):
        assert raw not in out

    code, out, _ = run(capsys, "keys", "list")
    assert code == 0 and other_id in out and used_id in out


async def test_bad_scopes_and_a_static_key_revoke_are_refused(capsys, admin_env, tenant) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(capsys, "keys", "create", "--tenant", tenant.name, "--scopes", "manage,root")
    assert code == 2 and "'root'" in err and "manage, proxy, credentials" in err
    code, _, err = run(capsys, "keys", "revoke", static_key_id(tenant.key))
    assert code == 2 and "AUTHQ_API_KEYS" in err
    code, _, err = run(capsys, "keys", "revoke", f"key_{secrets.token_hex(16)}")
    assert code == 2 and "not found" in err


async def test_a_busy_key_is_noted_once_not_at_every_request(client, tenant, redis_client) -> None:  # type: ignore[no-untyped-def]
    key_id = static_key_id(tenant.key)
    assert (await client.get("/api/v1/connectors", headers=tenant.headers)).status == 200
    first = float(redis_client.hget(schema.API_KEYS_USED, key_id) or 0)
    assert first == pytest.approx(time.time(), abs=30)
    redis_client.hset(schema.API_KEYS_USED, key_id, "1000.0")   # were a request to write, this would move
    for _ in range(5):
        assert (await client.get("/api/v1/connectors", headers=tenant.headers)).status == 200
    assert float(redis_client.hget(schema.API_KEYS_USED, key_id) or 0) == 1000.0
