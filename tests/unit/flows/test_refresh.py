"""The ``refresh`` job (``tasks/flows/refresh.py``) run in-process on the real Redis: a job that
finds its connector never authorised (a refresh queued before an authorise failed, or one that
never finished) fails ``not_supported``, saying why, rather than ``credentials_rejected``: no
credentials were ever given, so none were rejected."""

from __future__ import annotations

from tasks.jobs.runner import run_job
from tasks.jobs.scheduling import queue_refresh
from tasks.security.sealing import generate_key
from tests.support.helpers import save_connector
from tests.support.jobs import make_context


def test_a_refresh_of_a_connector_never_authorised_fails_not_supported(redis_client, tenant, fresh_oauth):
    ctx = make_context(redis_client)
    for status in ("pending", "failed"):
        connector = save_connector(redis_client, generate_key(), tenant, status=status, authorised_at=None,
                                   authentication_implementation_id="test-oauth", type="oauth2_authorization_code")
        job = queue_refresh(ctx, connector, lambda *_: None)
        ended = run_job(ctx, tenant.name, job.id)
        assert ended is not None and ended.status == "failed"
        assert ended.error is not None and ended.error["code"] == "not_supported", ended.error
        assert "never been authorised" in ended.error["message"] and ended.error["retryable"] is False
