"""What the fuzz tests feed the decoders: random bytes, msgpack of random shapes, mutations.

Random bytes alone rarely get past msgpack's first byte; msgpack-encoded random
values reach the field checks, and mutated valid messages reach the deepest ones.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import msgpack
from hypothesis import strategies as st

# Values a peer can put in a msgpack message (bin and str both, ints of every size).
ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what msgpack can carry
scalars = (
    st.none()
    | st.booleans()
    | ints
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.binary(max_size=40)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(st.text(max_size=10) | ints, inner, max_size=4)
    ),
    max_leaves=25,
)


def packed(value: Any) -> bytes:
    """``value`` as msgpack, as a peer would send it."""
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[bytes]) -> bytes:
    """A valid encoding with bytes flipped, cut, inserted or deleted."""
    data = bytearray(draw(valid))
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if operation == "flip" and data:
            data[position] ^= draw(st.integers(1, 255))
        elif operation == "cut":
            del data[position:]
        elif operation == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif data:
            del data[position : position + draw(st.integers(1, 8))]
    return bytes(data)


# Length-prefixed msgpack types claiming far more than follows: a decoder must not
# allocate what the header claims.
HUGE_CLAIMS = [
    b"\xdd\xff\xff\xff\xff",  # array32 of 4 Gi items
    b"\xdf\xff\xff\xff\xff",  # map32 of 4 Gi pairs
    b"\xc6\xff\xff\xff\xff",  # bin32 of 4 GiB
    b"\xdb\xff\xff\xff\xff",  # str32 of 4 GiB
    b"\xc9\xff\xff\xff\xff\x01",  # ext32 of 4 GiB
]


def peak_allocation(call: Callable[[], object]) -> int:
    """Bytes allocated at the peak while ``call`` runs (its exception is swallowed)."""
    tracemalloc.start()
    try:
        call()
    except Exception:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def assert_bounded(call: Callable[[], object], data: bytes) -> None:
    """``call`` on ``data`` allocates at most a small multiple of its size (plus 1 MiB)."""
    peak = peak_allocation(call)
    assert peak < (1 << 20) + 64 * len(data), f"{peak} bytes allocated for {len(data)} of input"
