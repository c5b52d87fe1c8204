"""``value_forms.address_kind`` reads addresses and CIDR blocks exactly as ``ipaddress`` does.

It reads plain IPv4 and IPv6 addresses and IPv4 blocks itself and hands everything else to
``ipaddress``: the oracle here is ``ipaddress`` alone, on generated addresses, blocks and near
misses (leading zeros, too many groups, a second ``::``, odd prefixes) and on any text, so a
shortcut that accepts what ``ipaddress`` refuses, or normalises differently, fails.
"""

from __future__ import annotations

import ipaddress

from hypothesis import example, given
from hypothesis import strategies as st

from elastic_connector.core.indicators.value_forms import address_kind


def _oracle(text: str) -> tuple[str, str] | None:
    if "%" in text:
        return None
    if "/" not in text:
        try:
            ipaddress.ip_address(text)
        except ValueError:
            return None
        return ("ip", text)
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    if network.prefixlen == network.max_prefixlen:
        return ("ip", text.partition("/")[0])
    return ("range", network.with_prefixlen)


_OCTETS = st.one_of(
    st.integers(0, 255).map(str),
    st.sampled_from(["00", "01", "010", "256", "999", "1000", "", " 1", "+1", "\u0661", "0x1"]),
)
_IPV4 = st.lists(_OCTETS, min_size=3, max_size=5).map(".".join)
_GROUPS = st.one_of(
    st.integers(0, 0xFFFF).map(lambda n: f"{n:x}"),
    st.integers(0, 0xFFFF).map(lambda n: f"{n:04X}"),
    st.sampled_from(["", "0", "00000", "g", "1.2.3.4", "ffff", " 1"]),
)
_IPV6 = st.one_of(
    st.lists(_GROUPS, min_size=1, max_size=10).map(":".join),
    st.tuples(
        st.lists(_GROUPS, max_size=8).map(":".join),
        st.lists(_GROUPS, max_size=8).map(":".join),
    ).map(lambda halves: f"{halves[0]}::{halves[1]}"),
    st.integers(0, 2**128 - 1).map(lambda n: ipaddress.IPv6Address(n).compressed),
    st.integers(0, 2**128 - 1).map(lambda n: ipaddress.IPv6Address(n).exploded),
)
_PREFIXES = st.one_of(
    st.integers(0, 130).map(str),
    st.sampled_from(
        ["", "08", "032", "-1", "+8", "8 ", "\u0668", "255.255.0.0", "0.0.255.255", "8/8"]
    ),
)
_ADDRESSES = st.one_of(
    _IPV4,
    _IPV6,
    st.tuples(st.one_of(_IPV4, _IPV6), _PREFIXES).map(lambda parts: f"{parts[0]}/{parts[1]}"),
    st.text(alphabet=st.sampled_from([*"0123456789abcdefABCDEF:./%x -"]), max_size=45),
    st.text(max_size=20),
)


@given(_ADDRESSES)
@example("1.2.3.4")
@example("01.2.3.4")
@example("1.2.3.4/16")
@example("1.2.3.4/32")
@example("1.2.3.4/0")
@example("1.2.3.4/33")
@example("1.2.3.4/")
@example("1.2.3.4/008")
@example("1.2.3.4/255.255.0.0")
@example("::")
@example(":::")
@example("1::2::3")
@example("1:2:3:4:5:6:7::")
@example("1:2:3:4:5:6:7:8::")
@example("::1:2:3:4:5:6:7")
@example("1:2:3:4:5:6:7:8")
@example("1:2:3:4:5:6:7")
@example("::ffff:1.2.3.4")
@example("fe80::1%eth0")
@example("2001:db8::/32")
@example("2001:db8::1/128")
def test_address_kind_is_ipaddress(text: str) -> None:
    assert address_kind(text) == _oracle(text)


def test_blocks_are_written_as_their_network() -> None:
    assert address_kind("10.1.2.3/8") == ("range", "10.0.0.0/8")
    assert address_kind("192.168.7.9/31") == ("range", "192.168.7.8/31")
    assert address_kind("2001:db8::5/64") == ("range", "2001:db8::/64")
    assert address_kind("10.1.2.3/32") == ("ip", "10.1.2.3")
