"""Subcommands of `distill`, one module each; `proxy.cli` registers them all.

A module exposes ``register(sub: proxy.cli.Subcommands) -> None``. Heavy imports
(torch, the trainer) happen inside the command functions, never at import time.
"""
