"""``api.body.nested_deeper_than``: the pre-scan that keeps deep JSON away from ``json.loads``.

Compared with a plain character-by-character walk on generated text: exact for every valid
JSON document, and never below the depth ``json.loads`` would reach on invalid text.
"""

from __future__ import annotations

import json
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from api.body import MAX_DEPTH, nested_deeper_than

MIB = 1024 * 1024


def reference_depth(raw: bytes) -> int:
    """The deepest nesting outside strings, walking every character."""
    depth = deepest = 0
    in_string = escaped = False
    for char in raw:
        if in_string:
            if escaped:
                escaped = False
            elif char == 0x5C:
                escaped = True
            elif char == 0x22:
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in b"]}":
            depth -= 1
    return deepest


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab,:'),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(alphabet='[]{}"\\k'), inner, max_size=4),
    max_leaves=60)


@settings(max_examples=400, deadline=None)
@given(json_values, st.integers(min_value=0, max_value=6))
def test_exact_on_valid_json(value, limit):
    raw = json.dumps(value).encode()
    assert nested_deeper_than(raw, limit) == (reference_depth(raw) > limit), raw


@settings(max_examples=600, deadline=None)
@given(st.text(alphabet='[]{}" a', max_size=80), st.integers(0, 5))
def test_never_below_the_true_depth_of_any_text(text, limit):
    """Unbalanced, unclosed, stray quotes: a depth above ``limit`` is always seen (an answer
    above the truth only ever meets text that is not JSON, a 400 either way)."""
    raw = text.encode()
    if reference_depth(raw) > limit:
        assert nested_deeper_than(raw, limit), raw


def test_the_contract_limit_is_32():
    assert not nested_deeper_than(b"[" * 32 + b"]" * 32)
    assert nested_deeper_than(b"[" * 33 + b"]" * 33)
    assert not nested_deeper_than(json.dumps({"s": "[" * 5000}).encode())


def test_a_mebibyte_of_hostile_shapes_is_measured_quickly():
    """Each is at most about what ``json.loads`` itself would spend on a body of this size."""
    shapes = {"deep": b"[" * MIB, "deep, closed": b"[" * (MIB // 2) + b"]" * (MIB // 2),
              "wide": b"[" + b"[]," * (MIB // 3) + b"[]]", "strings": b'["' + b"a" * MIB + b'"]',
              "escapes": b'"' + b'\\"' * (MIB // 2), "31 deep, repeated": (b"[" * 31 + b"]" * 31) * (MIB // 62)}
    for name, raw in shapes.items():
        started = time.perf_counter()
        nested_deeper_than(raw)
        assert time.perf_counter() - started < 1.0, name
    assert nested_deeper_than(shapes["deep"]) and not nested_deeper_than(shapes["wide"])
    assert MAX_DEPTH == 32
