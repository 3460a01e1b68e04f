"""``conductor token``: API tokens, created and revoked on the server's own database (like sacctmgr)."""

from __future__ import annotations

from typing import Optional

import typer

from cli.main import _settings, app, fail
from conductor.auth import TokenStore
from conductor.db.session import make_engine, migrate
from conductor.exceptions import ConductorError

token_app = typer.Typer(help="Create and revoke API tokens (run on the server, against its database).",
                        no_args_is_help=True)
app.add_typer(token_app, name="token")


def _store(ctx: typer.Context) -> TokenStore:
    engine = make_engine(_settings(ctx).effective_database_url)
    migrate(engine)
    return TokenStore(engine)


@token_app.command("create")
def create(
    ctx: typer.Context,
    user: str = typer.Option(..., "--user", help="The user the token acts as."),
    admin: bool = typer.Option(False, "--admin", help="Admins see all jobs, set priority and hold as admin."),
    account: Optional[list[str]] = typer.Option(None, "--account", help="An account the user may charge "
                                                                       "(repeat for several)."),
) -> None:
    """Create a token for USER and print it (only its hash is stored: copy it now).

    Example: conductor token create --user alice --account physics
    """
    if not user.strip():
        fail("--user must not be empty", code=2)
    try:
        typer.echo(_store(ctx).create(user, admin=admin, accounts=account))
    except ConductorError as exc:
        fail(str(exc))


@token_app.command("revoke")
def revoke(ctx: typer.Context, user: str = typer.Option(..., "--user", help="Whose tokens to revoke.")) -> None:
    """Revoke every token of USER.

    Example: conductor token revoke --user alice
    """
    try:
        typer.echo(f"revoked {_store(ctx).revoke_all(user)} token(s) of {user}")
    except ConductorError as exc:
        fail(str(exc))
