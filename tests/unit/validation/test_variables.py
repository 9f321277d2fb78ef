"""``tasks.validation.variables``: a job building a connector does not open what it has just sealed,
and a copy whose ciphertext was replaced is opened, never answered from the old value."""

from __future__ import annotations

from tasks.model.bodies import VariableIn
from tasks.model.catalog import load_catalog
from tasks.security.sealing import SecretBox, generate_key
from tasks.validation.variables import build_variables, plain_values
from tests.support.helpers import TEST_CATALOG


class CountingBox(SecretBox):
    def __init__(self, keys: str) -> None:
        super().__init__(keys)
        self.opened = 0

    def open(self, sealed: str) -> str:
        self.opened += 1
        return super().open(sealed)


def test_a_value_sealed_here_is_known_without_opening_it():
    box = CountingBox(generate_key())
    impl = load_catalog(TEST_CATALOG).implementation("test-bearer-nocheck")
    assert impl is not None
    [token] = build_variables([VariableIn(key="token", value="tok_clear_123", secret=True)], impl, box,
                              platform_app=False)
    assert token.value is None and token.value_sealed and "tok_clear_123" not in token.model_dump_json()
    assert plain_values([token], box) == {"token": "tok_clear_123"} and box.opened == 0

    # Another ciphertext in a copy (a reauthorise keeping the stored value): opened, not guessed.
    other = box.seal("tok_other_456")
    copy = token.model_copy(update={"value_sealed": other})
    assert plain_values([copy], box) == {"token": "tok_other_456"} and box.opened == 1

    # Read back from storage, the private value is gone: opened again.
    stored = type(token).model_validate_json(token.model_dump_json())
    assert plain_values([stored], box) == {"token": "tok_clear_123"} and box.opened == 2
