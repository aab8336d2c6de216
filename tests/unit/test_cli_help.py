"""Every command and option of ``meiqia`` explains itself in ``--help``."""

from __future__ import annotations


def test_every_option_of_every_command_has_help_text():
    import click

    from meiqia.cli import cli

    def walk(command: click.Command, path: str):
        yield path, command
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk(sub, f"{path} {name}")

    missing = [f"{path} {param.opts[0]}" for path, command in walk(cli, "meiqia")
               for param in command.params
               if isinstance(param, click.Option) and not param.help
               and param.opts[0] not in {"--help", "--version"}]
    assert missing == []
    undocumented = [path for path, command in walk(cli, "meiqia") if not command.help]
    assert undocumented == []
