"""The `distill` command. Thin: each subcommand parses its flags and calls into a module.

Every subcommand takes ``--config FILE`` (TOML, also ``DISTILL_CONFIG``); flags that
mirror a setting override it for that run.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from proxy.settings import Settings, load_settings

Command = Callable[[argparse.Namespace, Settings], int]
Registrar = Callable[["Subcommands"], None]


class Subcommands:
    """Adds subcommands that all accept --config."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self._sub = parser.add_subparsers(dest="name", required=True, metavar="COMMAND")
        self._common = argparse.ArgumentParser(add_help=False)
        self._common.add_argument("--config", help="TOML settings file (also DISTILL_CONFIG)")

    def add(
        self, name: str, help: str, command: Command, overrides: tuple[str, ...] = ()
    ) -> argparse.ArgumentParser:
        parser = self._sub.add_parser(name, help=help, description=help, parents=[self._common])
        parser.set_defaults(command=command, overrides=overrides)
        return parser


def registrars() -> list[Registrar]:
    """Every subcommand module under proxy/commands, in help order."""
    modules = ["serve", "config", "stats", "runs", "export", "feedback"]
    return [importlib.import_module(f"proxy.commands.{m}").register for m in modules]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="distill", description="OpenAI-compatible distilling inference proxy."
    )
    sub = Subcommands(parser)
    for register in registrars():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {
        name: getattr(args, name)
        for name in args.overrides
        if getattr(args, name, None) is not None
    }
    settings = load_settings(args.config, **overrides)
    command: Command = args.command
    return command(args, settings)


if __name__ == "__main__":
    sys.exit(main())
