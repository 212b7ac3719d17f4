"""``--help``: every subcommand has a description, every argument a help text and its default."""

from __future__ import annotations

import argparse

import pytest

from otelkv.commands.parser import build_parser


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_argument_is_explained_with_its_default(name: str) -> None:
    command = _subcommands()[name]
    assert command.description and len(command.description) > 40, name
    text = command.format_help()
    for action in command._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and len(action.help) > 10, f"{name} {action.dest}: no help"
        shown = action.default not in (None, False)
        if shown:
            assert f"(default: {action.default})" in " ".join(text.split()), f"{name} {action.dest}"
        elif action.option_strings and action.nargs != 0:
            assert "default" in action.help or action.required, f"{name} {action.dest}: no default said"


def test_the_migrations_output_formats_are_named_for_what_they_are() -> None:
    text = " ".join(_subcommands()["migrations"].format_help().split())
    assert "{table,wide,json,jsonl,yaml,html}" in text and "JSON Lines" in text and "JSON array" in text
    assert "YAML" in text and "HTML page" in text
