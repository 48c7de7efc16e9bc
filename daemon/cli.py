"""The ``syncline`` command line."""

from __future__ import annotations

import click

from daemon import __version__


@click.group()
@click.version_option(__version__, prog_name="syncline")
def cli() -> None:
    """syncline: event-sourced two-way sync between the systems a company runs."""


def main() -> None:
    """Entry point of the ``syncline`` console script."""
    cli(prog_name="syncline")
