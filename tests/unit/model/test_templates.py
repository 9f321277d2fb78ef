"""Catalog templates' filters (contract §4): ``lower``, ``upper``, ``dashes``, left to right, in
URLs (URL-encoded) and the OAuth 1.0a realm (as is); unknown filters are catalog problems."""

from __future__ import annotations

import pytest

from tasks.errors import JobFailed
from tasks.model.catalog import authority_variables
from tasks.model.templates import PLACEHOLDER, template_problems
from tasks.provider.guard import render_realm, render_url

NETSUITE = {"account_id": "1234567_SB1"}


def test_one_account_id_gives_the_netsuite_host_and_realm():
    url = render_url("https://{{account_id|lower|dashes}}.suitetalk.api.netsuite.com/services/rest", NETSUITE)
    assert url == "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest"
    assert render_realm("{{account_id}}", NETSUITE) == "1234567_SB1"
    assert render_realm("{{ account_id | upper }}", {"account_id": "1234567_sb1"}) == "1234567_SB1"


@pytest.mark.parametrize(("template", "expected"), [
    ("{{v|lower}}", "ab_c-d"), ("{{v|upper}}", "AB_C-D"), ("{{v|dashes}}", "aB-c-D"),
    ("{{v|dashes|upper}}", "AB-C-D"), ("{{v}}", "aB_c-D"),
])
def test_filters_apply_left_to_right(template, expected):
    assert render_realm(template, {"v": "aB_c-D"}) == expected


def test_a_filtered_value_in_a_url_is_still_url_encoded():
    assert render_url("https://x.test/{{v|upper}}", {"v": "a b/c"}) == "https://x.test/A%20B%2FC"


def test_names_and_authority_ignore_the_filters():
    assert PLACEHOLDER.findall("https://{{account_id|lower|dashes}}.x.test/{{path}}") == ["account_id", "path"]
    assert authority_variables("https://{{account_id|lower|dashes}}.x.test/{{path}}") == {"account_id"}


@pytest.mark.parametrize(("template", "problem"), [
    ("https://{{a|snake}}.x.test", "unknown filter(s) ['snake']"),
    ("https://{{a|lower|}}.x.test", "unknown filter(s) ['']"),
    ("https://{{a b}}.x.test", "not a placeholder"),
    ("https://x.test/{{a", "not a placeholder"),
])
def test_template_problems(template, problem):
    (found,) = template_problems(template)
    assert problem in found


def test_a_realm_needs_its_variable():
    with pytest.raises(JobFailed) as caught:
        render_realm("{{account_id}}", {})
    assert caught.value.code == "credentials_rejected"
