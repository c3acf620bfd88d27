"""Command-line argument types the project's commands share."""

import argparse


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1 (a count, a batch size), refused with a clear message."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
