"""``plait run --executor-option NAME=VALUE`` and ``--address``: options for the executor's constructor."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from plait.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "numbers.py"


def invoke(*args: str):
    return CliRunner().invoke(main, ["run", str(EXAMPLE), "--param", "n=3", *args], catch_exceptions=False)


def assert_usage_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_an_executor_option_reaches_the_executor():
    result = invoke("--executor", "threads", "-E", "max_workers=2")
    assert result.exit_code == 0, result.output
    assert "Success" in result.output


def test_an_executor_option_value_is_checked_by_the_executor():
    # max_workers=0 reaches ThreadExecutor, which says what is wrong with it
    assert_usage_error(
        invoke("--executor", "threads", "--executor-option", "max_workers=0"), "max_workers must be a positive integer"
    )


def test_an_option_the_executor_does_not_take_names_it():
    assert_usage_error(invoke("--executor", "threads", "--address", "tcp://127.0.0.1:8786"), "'threads'", "address")


def test_executor_options_need_an_executor_name():
    assert_usage_error(invoke("-E", "max_workers=2"), "need an executor", "--executor NAME")


def test_the_address_is_given_once():
    assert_usage_error(
        invoke("--executor", "threads", "--address", "tcp://a:1", "-E", "address=tcp://b:2"), "give the address once"
    )


def test_a_malformed_executor_option():
    assert_usage_error(invoke("--executor", "threads", "-E", "max_workers"), "is not NAME=VALUE", "--executor-option")
