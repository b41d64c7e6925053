"""Documentation is tested: every command has help with an example and is in the README."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from batch.cli import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            found += _commands(command, f"{path} ")
        else:
            found.append((path, command))
    return found


COMMANDS = _commands(cli)


def test_every_contract_command_exists() -> None:
    names = {name for name, _ in COMMANDS}
    assert {
        "template",
        "validate",
        "plan",
        "apply",
        "resume",
        "runs",
        "undo",
        "export",
        "migrate",
        "true-up",
        "skus",
        "simulator serve",
        "simulator reset",
        "simulator show",
    } <= names


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_command_has_help_with_an_example_and_is_in_the_readme(
    name: str, command: click.Command
) -> None:
    assert command.help and "Example:" in command.help, name
    assert f"m365batch {name}" in README, f"the README shows no example of `m365batch {name}`"
    result = CliRunner().invoke(cli, [*name.split(), "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_every_option_is_in_the_readme(name: str, command: click.Command) -> None:
    options = [o for p in command.params for o in getattr(p, "opts", []) if o.startswith("--")]
    missing = [o for o in options if o not in README and o != "--help"]
    assert not missing, f"`m365batch {name}`: the README does not mention {missing}"
