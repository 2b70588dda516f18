"""argtypes.bounded_int: the one-line errors the command modules' number options give."""

import argparse

import pytest

from dbtls_agent.commands import argtypes


def test_bounded_int_accepts_the_bounds_and_names_what_is_wrong():
    port = argtypes.bounded_int("port number", "port", 1, 65535)
    assert port("1") == 1 and port("65535") == 65535
    with pytest.raises(argparse.ArgumentTypeError, match=r"^not a port number: 'x'$"):
        port("x")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^port must be between 1 and 65535$"):
        port("0")
