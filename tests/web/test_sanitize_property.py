"""Property tests of the pure JSON body sanitiser (docs/reliability.md B3)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from helpdesk.web.middleware import sanitize_json_body


@given(st.binary(max_size=512))
def test_any_bytes_become_storable_utf8(raw: bytes) -> None:
    cleaned = sanitize_json_body(raw)
    text = cleaned.decode("utf-8")  # never raises
    assert "\x00" not in text


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_valid_json_keeps_its_meaning_except_nul(value: object) -> None:
    for ensure_ascii in (True, False):
        encoded = json.dumps(value, ensure_ascii=ensure_ascii).encode()
        assert json.loads(sanitize_json_body(encoded)) == _without_nul(value)


def _without_nul(value: object) -> object:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    return value
