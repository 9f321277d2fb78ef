"""The ``authenticate`` job: the provider's answer to an authorization-code redirect.

The state must be one authq issued, to this tenant, unused and unexpired; anything else
fails with ``state_invalid`` and changes nothing. (The code exchange itself lands with
the OAuth flows; until then no state is ever issued.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from . import keys
from .context import JobContext
from .errors import JobFailed
from .records import Job
from .requests import AuthenticateIn


def authenticate(ctx: JobContext, job: Job, body: dict[str, Any], step: Callable[[str], None]) -> dict[str, Any]:
    req = AuthenticateIn.model_validate(body)
    step("lookup_state")
    raw = ctx.store.redis.get(keys.oauth_state(req.state))
    issued = json.loads(raw) if raw else None
    if not issued or issued.get("tenant") != job.tenant:
        raise JobFailed("state_invalid", "The state was never issued, was already used or has expired.", "state")
    if req.error:
        raise JobFailed("access_denied" if req.error == "access_denied" else "provider_error",
                        req.error_description or "The user did not authorise the connection.", "code")
    raise JobFailed("not_supported", "The authorization-code exchange is not available in this version yet.")
