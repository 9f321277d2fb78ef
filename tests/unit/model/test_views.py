"""The records' public views (``tasks.model.views``): what ``view()`` builds is its definition.

Each record's view, the job's in every state it is shown in, validates strictly against the
definition the API description publishes; a key the definition does not name (the tenant, a
sealed value) is refused; a job's stored JSON is its view, compact, and reads back the same.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from tasks.errors import JobFailed, ProviderError
from tasks.model.records import (
    Certificate,
    ConnectionPool,
    Connector,
    Credentials,
    Job,
    Pivot,
    ProgressStep,
    RateLimit,
    Session,
    Variable,
    utcnow,
)
from tasks.model.views import CertificateView, ConnectorView, JobView, PoolView, SessionView

NOW = utcnow()


def _connector() -> Connector:
    return Connector(
        id="con_" + "a" * 32, tenant="acme", name="Caf\u00e9", authentication_implementation_id="test-basic",
        type="basic", system="woocommerce", status="authorised", timezone="Europe/London", date_format="d/m/Y",
        rate_limit=RateLimit(unit="minute", duration=60),
        variables=[Variable(id="v1", key="base_url", value="https://shop.example"),
                   Variable(id="v2", key="consumer_secret", value_sealed="gAAAA-sealed", secret=True),
                   Variable(id="v3", key="region", value="eu", locked=True, pivot=Pivot(alias="r", required=True))],
        credentials=Credentials(token_type="Bearer", scopes=["read"], expires_at=NOW + timedelta(hours=1)),
        credentials_sealed="gAAAA-token", authorised_at=NOW, created_at=NOW, updated_at=NOW)


def _jobs() -> list[Job]:
    connector = _connector().view()
    redirect = {"type": "redirect", "url": "https://provider.example/authorize?state=s"}
    ended = Job(id="job_0", tenant="acme", type="authorise", connector_id="con_" + "a" * 32, attempts=1,
                created_at=NOW, started_at=NOW, finished_at=NOW)
    return [
        Job(id="job_1", tenant="acme", type="authorise", connector_id="con_" + "a" * 32, created_at=NOW),
        Job(id="job_2", tenant="acme", type="authenticate", created_at=NOW),  # no connector yet: no link to one
        ended.model_copy(update={"id": "job_3", "status": "succeeded",
                                 "progress": [ProgressStep(step="token_request", at=NOW)],
                                 "result": {"connector": connector, "next_action": redirect}}),
        ended.model_copy(update={"id": "job_4", "status": "failed",
                                 "error": JobFailed("credentials_rejected", "No.", "variables").as_error()}),
        ended.model_copy(update={"id": "job_5", "status": "failed",
                                 "error": ProviderError("Refused.", error="invalid_grant").as_error()}),
    ]


def _records() -> list[tuple[Any, Any]]:
    cases: list[tuple[Any, Any]] = [(job, JobView) for job in _jobs()]
    return cases + [
        (_connector(), ConnectorView),
        (ConnectionPool(id=1, tenant="acme", name="p", limit=3, created_at=NOW), PoolView),
        (Session(id="ses_1", tenant="acme", expires_at=NOW + timedelta(minutes=5), created_at=NOW), SessionView),
        (Certificate(id="crt_1", tenant="acme", certificate_pem="PEM", key_sealed="gAAAA-key",
                     passphrase_sealed="gAAAA-pass", subject="CN=a", issuer="CN=a", fingerprint_sha256="AB",
                     not_before=NOW, not_after=NOW + timedelta(days=1), created_at=NOW), CertificateView),
    ]


@pytest.mark.parametrize(("record", "shape"), _records(), ids=lambda x: getattr(x, "id", None) or x.__name__)
def test_a_view_is_exactly_its_definition(record: Any, shape: Any) -> None:
    view = record.view()
    adapter = TypeAdapter(shape)
    adapter.validate_python(view, strict=True)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        adapter.validate_python({**view, "tenant": record.tenant}, strict=True)
    assert "sealed" not in json.dumps(view)


def test_a_secret_variable_shows_no_value() -> None:
    variables = _connector().view()["variables"]
    assert variables[1]["value"] is None and variables[1]["has_value"] and variables[1]["secret"]
    assert variables[0]["value"] == "https://shop.example"


def test_a_job_links_its_connector_only_when_it_has_one() -> None:
    with_connector, without = _jobs()[:2]
    assert with_connector.view()["links"] == {"self": "/api/v1/jobs/job_1",
                                              "connector": f"/api/v1/connectors/con_{'a' * 32}"}
    assert without.view()["links"] == {"self": "/api/v1/jobs/job_2"}


@pytest.mark.parametrize("job", _jobs(), ids=lambda job: job.id)
def test_a_stored_job_is_its_view_in_compact_json(job: Job) -> None:
    stored = job.stored_json()
    assert stored == json.dumps(job.view(), separators=(",", ":"))
    assert Job.from_stored(stored, job.tenant).stored_json() == stored
