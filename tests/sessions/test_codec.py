from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pytest

from clustersession.sessions import codec

ROUND_TRIPS = [
    None,
    True,
    0,
    -(2**63),
    2**64 - 1,
    1.5,
    "ünïcode",
    b"\x00\xff",
    [1, [2, {"k": "v"}]],
    {"nested": {"a": [1, 2]}, "n": None},
    dt.datetime(2026, 11, 29, 3, 30, 0, 123456),
    dt.datetime(2026, 11, 29, 3, 30, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
    dt.date(2026, 11, 29),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    decimal.Decimal("12.3400"),
    {1, 2, 3},
    frozenset({"a"}),
    {"cart": [{"sku": "A1", "when": dt.date(2026, 1, 1)}]},
]


@pytest.mark.parametrize("value", ROUND_TRIPS, ids=repr)
def test_supported_values_round_trip(value: object) -> None:
    decoded = codec.decode(codec.encode(value))
    assert decoded == value
    assert type(decoded) is type(value)


def test_tuples_come_back_as_lists() -> None:
    assert codec.decode(codec.encode((1, 2))) == [1, 2]


@pytest.mark.parametrize("value", [object(), {"k": object()}, [1, lambda: 0], 2**64, complex(1, 2)])
def test_unsupported_values_raise_type_error(value: object) -> None:
    with pytest.raises(TypeError):
        codec.encode(value)


def test_unsupported_type_is_named() -> None:
    class Basket:
        pass

    with pytest.raises(TypeError, match="Basket"):
        codec.encode(Basket())


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\xd4\x63\x00", b"\x92\x01"])
def test_malformed_bytes_raise_codec_error(data: bytes) -> None:
    with pytest.raises(codec.CodecError):
        codec.decode(data)


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, [2**70], {"a": 2**70}, frozenset({2**70})])
def test_an_int_beyond_64_bits_is_named_out_of_range(value: object) -> None:
    # msgpack passed such ints to the fallback, which called int "not serialisable"
    with pytest.raises(TypeError, match="out of range"):
        codec.encode(value)
