"""``authq catalog check`` reports every problem of a file in one run, each with its path in the
file and, for YAML, its line; a file that cannot be read says which file."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from authq.cli import main
from tasks.model.catalog_check import catalog_problems, check_file

FIVE_MISTAKES = """\
implementations:
  - id: ok
    system: Fine
    type: token
    variables: [{key: token}]
  - id: wrong-type
    system: Acme
    type: oauth3
  - id: no-token-url
    system: Acme
    type: oauth2_client_credentials
    variables: [{key: client_id}]
  - id: unknown-variable
    system: Acme
    type: basic
    check: {method: GET, url: "https://{{shop}}.acme.test/me"}
  - id: unknown-filter
    system: NetSuite
    type: oauth1_token
    base_url: "https://{{account_id|kebab}}.suitetalk.api.netsuite.com"
    variables: [{key: account_id}, {key: consumer_key}, {key: consumer_secret}, {key: token_id},
                {key: token_secret}]
  - id: ok
    system: Again
    type: token
platform_apps:
  - {key: app, implementation_id: nowhere, client_id: x}
"""


def test_five_mistakes_are_all_reported_with_their_paths_and_lines(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    file = tmp_path / "five.yaml"
    file.write_text(FIVE_MISTAKES)
    assert main(["catalog", "check", str(file)]) == 2
    err = capsys.readouterr().err
    assert "6 problems" in err
    for expected in (
        "implementations[1].type (line 8): The selected type is invalid",
        "implementations[2].token_url (line 9): type oauth2_client_credentials needs token_url",
        "implementations[3].check.url (line 16): uses {{shop}} but no variable has that key",
        "implementations[4].base_url (line 20): {{account_id|kebab}} uses the unknown filter(s) ['kebab']",
        "implementations[5].id (line 23): the id 'ok' is used by an earlier implementation",
        "platform_apps[0].implementation_id (line 27): names unknown implementation 'nowhere'",
    ):
        assert expected in err, err


def test_the_same_problems_from_a_json_file_have_paths_but_no_lines() -> None:
    problems = catalog_problems(json.dumps(yaml.safe_load(FIVE_MISTAKES)), "five.json")
    assert [str(p).split(":")[0] for p in problems] == [
        "implementations[1].type", "implementations[2].token_url", "implementations[3].check.url",
        "implementations[4].base_url", "implementations[5].id", "platform_apps[0].implementation_id"]
    assert all(p.line is None for p in problems)


def test_type_needs_and_an_unknown_field_are_each_reported() -> None:
    text = """\
implementations:
  - id: a
    system: A
    type: oauth1
    variables: [{key: consumer_key}]
  - id: b
    system: B
    type: oauth2_jwt_bearer
    token_url: "https://oauth2.googleapis.com/token"
    scopez: [x]
"""
    shown = [str(p) for p in catalog_problems(text, "t.yaml")]
    assert shown == [
        "implementations[0].request_token_url (line 2): type oauth1 needs request_token_url",
        "implementations[0].authorize_url (line 2): type oauth1 needs authorize_url",
        "implementations[0].access_token_url (line 2): type oauth1 needs access_token_url",
        "implementations[0].variables (line 5): type oauth1 needs a consumer_secret variable",
        "implementations[1].scopez (line 10): The scopez field is not allowed.",
    ]


def test_broken_yaml_says_where() -> None:
    (problem,) = catalog_problems("implementations:\n  - id: [unclosed\n", "x.yaml")
    assert problem.line is not None and "not valid YAML" in problem.message


def test_a_missing_file_says_which(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    (problem,) = check_file(missing)
    assert str(missing) in problem.message and "No such file" in problem.message


def test_the_shipped_and_test_catalogs_have_no_field_or_consistency_problems() -> None:
    from importlib import resources

    shipped = resources.files("tasks.model").joinpath("catalog.yaml").read_text(encoding="utf-8")
    assert catalog_problems(shipped, "catalog.yaml") == []
    assert main(["catalog", "check", str(Path(str(resources.files("tasks.model"))) / "catalog.yaml")]) == 0
