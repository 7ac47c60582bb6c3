"""Every ``--help`` of the three CLIs reads cleanly: no markup eaten (stray spaces), no internal type labels,
defaults shown, no project jargon (issue 10, item 7). In-process, through Typer's CliRunner."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from asyncq.cli.admin import app as asyncq_app
from asyncq.consumer.cli import app as consumer_app
from asyncq.producer.cli import app as producer_app

COMMANDS = [
    pytest.param(producer_app, [], id="producer"),
    pytest.param(consumer_app, [], id="consumer"),
    *[
        pytest.param(asyncq_app, command, id="asyncq " + " ".join(command))
        for command in (
            ["demo"], ["stats"], ["watch"], ["health"],
            ["dead-letters", "list"], ["dead-letters", "requeue"], ["dead-letters", "purge"],
        )
    ],
]  # fmt: skip


def _help(app: typer.Typer, command: list[str]) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


def _rows(text: str) -> dict[str, str]:
    """Option name -> its row in the help table."""
    rows = {}
    for line in text.splitlines():
        found = re.match(r"│\s+(--[a-z-]+)", line)
        if found:
            rows[found.group(1)] = line
    return rows


@pytest.mark.parametrize(("app", "command"), COMMANDS)
def test_help_is_clean(app: typer.Typer, command: list[str]) -> None:
    text = _help(app, command)
    assert not re.search(r"\w \.|\w ,", text), text  # a bracketed phrase eaten as markup leaves "word ."
    for option, row in _rows(text).items():
        if option != "--help":  # Typer's own
            assert not re.search(r"<(bool|str|int|float|path|int range|float range)>", row), row
    assert "seed" not in text.lower(), text


def test_defaults_are_shown() -> None:
    consumer = _rows(_help(consumer_app, []))
    assert "[default: (adapts to the backlog)]" in consumer["--prefetch"]
    assert "[default: (no limit)]" in consumer["--timeout"]
    health = _rows(_help(asyncq_app, ["health"]))
    assert "[default: (this host's name)]" in health["--host"]
    url = _rows(_help(producer_app, []))["--redis-url"]
    assert "redis://:PASSWORD@HOST:PORT/DB" in url  # brackets in the text were eaten as markup before
