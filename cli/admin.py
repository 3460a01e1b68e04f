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
    unix_user: Optional[str] = typer.Option(None, "--unix-user", help="The Unix account USER's jobs run as "
                                            "(default: the one named USER); it must exist on this node."),
) -> None:
    """Create a token for USER and print it (only its hash is stored: copy it now).

    Where jobs run as their submitters (AUTH=token, service root), USER's jobs run as the Unix
    account of that name, or the one --unix-user names: it must exist on this node (and on
    every node jobs run on), and only an admin may map to root.

    Example: conductor token create --user alice --account physics
    Example: conductor token create --user portal-alice --unix-user alice
    """
    if not user.strip():
        fail("--user must not be empty", code=2)
    if unix_user is not None and not unix_user.strip():
        fail("--unix-user must not be empty", code=2)
    try:
        typer.echo(_store(ctx).create(user, admin=admin, accounts=account, unix_user=unix_user,
                                      require_unix_account=True))
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
