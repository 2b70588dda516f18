"""argparse types shared by the command modules: an integer within bounds, with one-line errors."""

import argparse
from typing import Callable


def bounded_int(noun: str, name: str, low: int, high: int) -> Callable[[str], int]:
    """A ``type=`` for argparse: ``"not a <noun>: 'x'"`` or ``"<name> must be between <low> and <high>"``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError("not a {}: {!r}".format(noun, text)) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError("{} must be between {} and {}".format(name, low, high))
        return value
    return parse
