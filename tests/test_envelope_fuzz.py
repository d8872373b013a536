"""Whatever arrives on the topic, open_message either opens it, skips it, or
names it as poison: it never fails any other way."""

import json

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from eventbus.envelope import Envelope, PoisonMessage, open_message  # noqa: E402

GOOD_HEADERS = {
    "ce_specversion": b"1.0",
    "ce_id": b"8c1f7e0e-6a51-4f3e-9a53-0d2b9f6f1c11",
    "ce_source": b"orders",
    "ce_type": b"OrderCreated",
    "ce_time": b"2026-11-27T10:00:00.000Z",
    "content-type": b"application/json",
    "traceparent": b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
}
TYPES = [b"OrderCreated", b"PaymentCaptured", b"EmailSent", b"OrderShipped", b""]
FIELDS = ["orderId", "userId", "itemId", "qty", "amount", "to", "ts"]

# Mostly-valid headers with some replaced by junk or left out, so that every
# branch of open_message is reached, not only the first check.
header_values = st.sampled_from(TYPES) | st.binary(max_size=30)
headers = st.builds(
    lambda replaced, dropped: {k: v for k, v in (GOOD_HEADERS | replaced).items() if k not in dropped},
    st.dictionaries(st.sampled_from([*GOOD_HEADERS, "x-other"]), header_values, max_size=3),
    st.sets(st.sampled_from(list(GOOD_HEADERS)), max_size=2),
)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
payloads = st.dictionaries(st.sampled_from(FIELDS), json_scalars).map(lambda payload: json.dumps(payload).encode())
values = payloads | st.binary(max_size=100)


@settings(max_examples=200, deadline=None)
@given(headers=headers, key=st.none() | st.binary(max_size=8), value=values)
def test_any_message_opens_is_skipped_or_is_poison(headers, key, value):
    try:
        opened = open_message(headers, key, value)
    except PoisonMessage:
        return
    assert opened is None or isinstance(opened, Envelope)
