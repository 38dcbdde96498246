"""Address parsing helpers of peng3dnet.util."""

import pytest

from peng3dnet import errors, util


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 8080)),
        ("127.0.0.1:1234", ("127.0.0.1", 1234)),
        ("localhost:0", ("localhost", 0)),
        ("example.com:65535", ("example.com", 65535)),
    ],
)
def test_parse_address(addr, expected):
    assert tuple(util.parse_address(addr)) == expected


def test_default_port_is_used_without_a_port():
    assert tuple(util.parse_address("host", default_port=99)) == ("host", 99)


@pytest.mark.parametrize("addr", ["host:notaport", "host:-1", "host:65536", "host:1.5"])
def test_invalid_ports(addr):
    with pytest.raises(errors.InvalidPortError):
        util.parse_address(addr)


def test_socketstyle_accepts_tuples_and_strings():
    assert tuple(util.normalize_addr_socketstyle(("1.2.3.4", 5))) == ("1.2.3.4", 5)
    assert tuple(util.normalize_addr_socketstyle("1.2.3.4:5")) == ("1.2.3.4", 5)
    assert tuple(util.normalize_addr_socketstyle("1.2.3.4", 7)) == ("1.2.3.4", 7)


@pytest.mark.reference_bug(11)
@pytest.mark.parametrize(
    ("addr", "expected"),
    [("::1", ("::1", 8080)), ("[::1]", ("::1", 8080)), ("[::1]:99", ("::1", 99))],
)
def test_ipv6_literals(addr, expected):
    assert tuple(util.parse_address(addr)) == expected


@pytest.mark.reference_bug(11)
def test_normalize_addr_formatted():
    assert util.normalize_addr_formatted(("127.0.0.1", 80)) == "127.0.0.1:80"
    assert util.normalize_addr_formatted("[::1]:80") == "[::1]:80"


@pytest.mark.parametrize("addr", ["a:b:c", "host:80:90", "1:2:x::"])
def test_several_colons_that_are_not_ipv6_are_refused(addr):
    # The original refuses every address with several colons this way; ours accepts
    # real IPv6 addresses (bug 11) but nothing else of that form.
    with pytest.raises(errors.UnsupportedAddressError):
        util.parse_address(addr)
