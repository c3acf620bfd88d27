"""The shared argument types refuse what a command cannot use, with a message argparse shows."""

import argparse

import pytest

from contract.arguments import positive


def test_a_count_below_one_is_refused_by_argparse_with_the_reason(capsys: pytest.CaptureFixture) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=positive)
    assert parser.parse_args(["--batch-size", "3"]).batch_size == 3
    with pytest.raises(SystemExit):
        parser.parse_args(["--batch-size", "0"])
    assert "must be at least 1, got 0" in capsys.readouterr().err
