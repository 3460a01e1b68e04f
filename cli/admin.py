"""``conductor token``: API tokens, created and revoked on the server's own database (like sacctmgr)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cli.app import app, fail, settings
from conductor.exceptions import ConductorError

if TYPE_CHECKING:
    from conductor.auth import TokenStore


@app.group("token", no_args_is_help=True)
def token_app() -> None:
    """Create and revoke API tokens (run on the server, against its database)."""


def _store(ctx: click.Context) -> TokenStore:
    from conductor.auth import TokenStore  # SQLAlchemy and alembic: only the token commands pay for them
    from conductor.db.session import make_engine, migrate

    engine = make_engine(settings(ctx).effective_database_url)
    migrate(engine)
    return TokenStore(engine)


@token_app.command("create")
@click.option("--user", required=True, help="The user the token acts as.")
@click.option("--admin", is_flag=True, help="Admins see all jobs, set priority and hold as admin.")
@click.option("--account", multiple=True, help="An account the user may charge (repeat for several).")
@click.option("--unix-user", "unix_user", default=None,
              help="The Unix account USER's jobs run as (default: the one named USER); it must exist on this node.")
@click.pass_context
def create(ctx: click.Context, user: str, admin: bool, account: tuple[str, ...], unix_user: str | None) -> None:
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
        click.echo(_store(ctx).create(user, admin=admin, accounts=list(account) or None,  # None: keep theirs
                                      unix_user=unix_user, require_unix_account=True))
    except ConductorError as exc:
        fail(str(exc))


@token_app.command("revoke")
@click.option("--user", required=True, help="Whose tokens to revoke.")
@click.pass_context
def revoke(ctx: click.Context, user: str) -> None:
    """Revoke every token of USER.

    Example: conductor token revoke --user alice
    """
    try:
        click.echo(f"revoked {_store(ctx).revoke_all(user)} token(s) of {user}")
    except ConductorError as exc:
        fail(str(exc))
