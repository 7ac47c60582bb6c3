"""Usage errors of the three CLIs, in-process through Typer's CliRunner: exit 2, the option named, no traceback,
and nothing tried against Redis (the URL given points nowhere; a command that got that far would exit 1)."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from asyncq.cli.admin import app as asyncq_app
from asyncq.consumer.cli import app as consumer_app
from asyncq.producer.cli import app as producer_app

APPS = {"producer": producer_app, "consumer": consumer_app, "asyncq": asyncq_app}
NOWHERE = {"REDIS_URL": "redis://127.0.0.1:1/0", "COLUMNS": "200", "NO_COLOR": "1"}


def _invoke(app: typer.Typer, args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args, env=NOWHERE)
    assert not isinstance(result.exception, AssertionError)
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("name", "args", "named"),
    [
        ("producer", ["--count", "-5"], "--count"),
        ("producer", ["--rate", "fast"], "--rate"),
        ("producer", ["--queue", "no spaces"], "invalid queue name"),
        ("consumer", ["--work", "1-0"], "--work"),
        ("consumer", ["--work", "soon"], "SECONDS or MIN-MAX"),
        ("consumer", ["--concurrency", "0"], "--concurrency"),
        ("consumer", ["--bogus"], "--bogus"),
        ("consumer", ["--queue", "a*"], "invalid queue name"),
        ("asyncq", ["dead-letters", "requeue"], "name the ids to requeue, or pass --all"),
        ("asyncq", ["no-such-command"], "No such command"),
    ],
)
def test_invalid_options_are_usage_errors(name: str, args: list[str], named: str) -> None:
    code, output = _invoke(APPS[name], args)
    assert code == 2, output
    assert "Traceback" not in output
    assert "Usage:" in output
    assert named in " ".join(output.replace("│", " ").split()), output  # the box may wrap the message


def test_help_documents_every_option() -> None:
    for name in ("producer", "consumer"):
        code, text = _invoke(APPS[name], ["--help"])
        assert code == 0, text
        for option in ("--queue", "--redis-url", "--log-format", "--verbose"):
            assert option in text, f"{name} --help: {option}"
    _, text = _invoke(consumer_app, ["--help"])
    for option in ("--concurrency", "--work", "--handler", "--drain", "--grace", "--max-deliveries", "--metrics-port"):
        assert option in text
    code, text = _invoke(asyncq_app, ["--help"])
    assert code == 0
    for command in ("demo", "stats", "watch", "health", "dead-letters"):
        assert command in text
