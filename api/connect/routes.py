"""The connect page's endpoints, declared as every endpoint is (``api.operations.Endpoint``):
no API key (the page's token is the credential), HTML answers."""

from __future__ import annotations

from api.connect import views
from api.operations import Endpoint, Param, Reply, pages

PAGE = "/connect/{token}"
TAG = "connect page"
NOT_FOUND = pages("The token is unknown or expired (or the page names nothing the session offers): a page that "
                  "says so.", 404)
LIMITED = pages("Too many requests for this page's token; `Retry-After` says when to reload.", 429)
IMPLEMENTATION = Param("implementation", "query", "An implementation the session offers: its form.")
FORM_FIELDS = {
    "type": "object",
    "description": "`csrf_token` and `implementation` (from the page's form) and `var.<key>` for each variable the "
                   "form asks.",
    "properties": {"csrf_token": {"type": "string"}, "implementation": {"type": "string"}},
    "additionalProperties": {"type": "string"},
}

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET", "/connect/static/connect.css", views.stylesheet, "The connect page's style sheet", TAG, key=False,
        answers={200: Reply("The style sheet.", media="text/css")}),
    Endpoint(
        "GET", PAGE, views.index, "A session's connect page", TAG, key=False, params=(IMPLEMENTATION,),
        description="The implementations the session offers (allowed, with settings complete from the session's "
                    "`defaults` and then the catalog's); with `implementation`, that one's form: the variables the "
                    "end user supplies (not advanced, configurable or required without a value), with their "
                    "labels, secret ones as password fields. For a session with `connector_id`, that connector's "
                    "form.",
        answers={**pages("The page.", 200), **NOT_FOUND, **LIMITED}),
    Endpoint(
        "POST", PAGE, views.post, "Submit a connect form", TAG, key=False, body_schema=FORM_FIELDS,
        body_media="application/x-www-form-urlencoded",
        description="Validated and queued as `POST /api/v1/oauth/authorise` (or, with the session's `connector_id`, "
                    "`PATCH /api/v1/oauth/{connector}/reauthorise`) would be, with the session. Then the browser goes "
                    "to the provider (redirect flows), to the session's `return_url` with `connector_id` and "
                    "`status`, or sees a page following the job; a validation error or a failed job shows the form "
                    "again, beside the field it concerns.",
        answers={303: Reply("To the provider, or to the session's `return_url`.", headers=("Location",)),
                 **pages("A page following the job, the form with the job's failure, or the done page.", 200),
                 **pages("The CSRF token does not match the browser's cookie.", 403),
                 **pages("Not a form (`application/x-www-form-urlencoded`).", 415),
                 **pages("The form, with the errors beside their fields.", 422),
                 **pages("The job could not be queued; send the form again.", 503),
                 **NOT_FOUND, **LIMITED}),
    Endpoint(
        "GET", f"{PAGE}/job", views.follow, "Follow a connect page's job", TAG, key=False,
        params=(IMPLEMENTATION, Param("ref", "query", "The job's reference (its id, signed for this session).")),
        answers={303: Reply("To the provider, or to the session's `return_url`.", headers=("Location",)),
                 **pages("The job's progress (refreshing itself), the form with its failure, or the done page.", 200),
                 **NOT_FOUND, **LIMITED}),
)
