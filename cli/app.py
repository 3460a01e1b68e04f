"""The ``conductor`` command group that every command registers on, and what the commands share.

Dependencies point one way: cli/main.py (the entry point) imports the command modules
(cli/admin.py, cli/control.py, cli/query.py), and they import this module.

The commands are click commands.  typer (0.29) coerces every parameter through a pydantic
TypeAdapter, so an empty typer command alone takes about 145 ms to start on this machine
against about 50 ms for click; figures in docs/PERFORMANCE.md.  Nothing here imports
pydantic, SQLAlchemy, alembic, Ray or FastAPI: the request commands (submit, show, queue,
cancel, ...) read only the API's URL and token (:func:`client_config`); the service
commands (up, worker, token) load the full Settings (:func:`settings`) and import what they
run inside their own functions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Optional, TypeVar

import click

from conductor.exceptions import ConfigError
from conductor.properties import ClientConfig, load_client_config

if TYPE_CHECKING:
    from cli.client import ApiClient
    from conductor.config import Settings

T = TypeVar("T")
#: Exit status of a command interrupted by ^C (128 + SIGINT), as shells report it.
INTERRUPTED_EXIT = 130


class Command(click.Command):
    """A conductor command: its summary in ``--help`` is the docstring's whole first line, not 45 characters."""

    def get_short_help_str(self, limit: int = 45) -> str:
        if self.short_help:
            return self.short_help
        return (self.help or "").strip().split("\n", 1)[0]


class _Group(click.Group):
    """conductor's groups: commands listed in the order they are defined; ^C exits 130, not "Aborted!" (1)."""

    command_class = Command
    group_class = type  # a subgroup (token) is a _Group too

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def get_short_help_str(self, limit: int = 45) -> str:
        return Command.get_short_help_str(self, limit)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise click.exceptions.Exit(INTERRUPTED_EXIT) from None


@click.group(name="conductor", cls=_Group, no_args_is_help=True, context_settings={"max_content_width": 120},
             help="conductor: submit batch scripts Slurm-style; they run as Ray tasks on your nodes.")
@click.option("--config", type=click.Path(path_type=Path), default=None,
              help="Configuration file (default ./app.properties).")
@click.pass_context
def app(ctx: click.Context, config: Optional[Path]) -> None:
    ctx.obj = {"config": config}  # read by settings() or client_config(), whichever the command needs


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr and a non-zero exit; never a traceback."""
    click.echo(f"conductor: error: {message}", err=True)
    raise click.exceptions.Exit(code)


def settings(ctx: click.Context) -> Settings:
    """The whole configuration, validated (up, worker, token); a bad value exits 2 naming key, value and line."""
    from conductor.config import load_settings  # pydantic: only the service commands pay for it

    try:
        return load_settings(ctx.obj["config"])
    except ConfigError as exc:
        fail(str(exc), code=2)


def client_config(ctx: click.Context) -> ClientConfig:
    """The API's URL and token, read without validating the keys only the service uses."""
    try:
        found = load_client_config(ctx.obj["config"], os.environ)
    except ConfigError as exc:
        fail(str(exc), code=2)
    return found if found is not None else settings(ctx).client_config  # settings() names a bad API_PORT


def call(action: Callable[[ApiClient], T], ctx: click.Context) -> T:
    """``action`` on the command's API client (one keep-alive connection); a failure is one line, exit 1.

    A failed request first validates the whole configuration: a typo there (exit 2, naming
    it) explains more than its consequence does, as when every command validated it first.
    """
    from cli.client import ApiClient, ClientError

    client = ctx.obj.get("client")
    if client is None:
        client = ctx.obj["client"] = ApiClient(client_config(ctx))
    try:
        return action(client)
    except ClientError as exc:
        settings(ctx)
        fail(str(exc))
