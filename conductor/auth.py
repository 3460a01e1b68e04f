"""Who calls: API tokens, stored hashed, and the Caller they stand for.

A token is 32 random bytes (URL-safe text) shown once at creation; only its SHA-256 is
stored, so a copy of the database does not hand out working tokens.  (A fast hash is
enough for a random 256-bit secret; slow hashes are for passwords people choose.)

Jobs run as their submitters' Unix accounts when AUTH=token and the service runs as root
(``runs_jobs_as_submitters``): a token's user maps to the account of the same name, or to
the one ``conductor token create --unix-user`` recorded.  Otherwise every job runs as the
service's own user, as the start-up banner says (``job_identity_mode``).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from sqlalchemy import Engine, select, update

from conductor import jobs
from conductor.config import Settings
from conductor.db.errors import translate_errors
from conductor.db.models import TokenRow, UserRow
from conductor.exceptions import ConductorError, Forbidden
from conductor.db.session import make_sessionmaker

#: Prefix that makes a conductor token recognisable in logs and secret scanners.
TOKEN_PREFIX = "cdt_"


@dataclass(frozen=True)
class Caller:
    """The user behind a request.  ``accounts`` None means any account (trusted local mode).

    ``unix_user`` is the Unix account their jobs run as; empty: the service's own user (AUTH=none,
    or the service does not run as root).
    """

    name: str
    admin: bool = False
    accounts: tuple[str, ...] | None = ()
    unix_user: str = ""

    def may_charge(self, account: str) -> bool:
        return self.accounts is None or account == "" or account in self.accounts

    def may_see(self, job_user: str) -> bool:
        return self.admin or job_user == self.name

    def check_submit(self, spec: jobs.JobSpec) -> jobs.JobSpec:
        """The spec as this caller may submit it: their own user name and Unix account, their accounts,
        no admin powers."""
        if self.accounts is None:  # trusted local mode: the request's own user stands
            if spec.run_as:
                raise Forbidden("run_as", "with AUTH=none every job runs as the service's own user")
            return spec
        if not self.may_charge(spec.account):
            allowed = ", ".join(self.accounts) or "none"
            raise Forbidden("account", f"{self.name} may not charge {spec.account!r} (allowed: {allowed})")
        if spec.priority and not self.admin:
            raise Forbidden("priority", "only an admin may set a job's priority")
        if spec.hold == "admin" and not self.admin:
            raise Forbidden("hold", "only an admin may hold as admin")
        return replace(spec, user=self.name, run_as=self._run_as(spec.run_as))

    def _run_as(self, asked: str) -> str:
        """The Unix account a job runs as: the caller's own, or (admins only) the one it asks for."""
        if asked and not self.admin:
            raise Forbidden("run_as", "only an admin may choose the Unix account a job runs as")
        if asked and not self.unix_user:
            raise Forbidden("run_as", "jobs run as the service's own user here: it does not run as root")
        if not asked and self.unix_user == "root" and not self.admin:
            raise Forbidden("run_as", f"{self.name} maps to the Unix account root; only an admin's job may run as root")
        return asked or self.unix_user


#: The caller when authentication is off: the service trusts whoever reaches it (127.0.0.1).
TRUSTED = Caller(name="", admin=True, accounts=None)


def runs_jobs_as_submitters(settings: Settings) -> bool:
    """Whether jobs run as their submitters' Unix accounts: AUTH=token and this process is root."""
    return settings.auth_enabled and os.geteuid() == 0


def job_identity_mode(settings: Settings) -> str:
    """Who jobs run as, in words (the start-up banner's line)."""
    if runs_jobs_as_submitters(settings):
        return "each submitter's Unix account (AUTH=token, service is root)"
    try:
        me = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        me = f"uid {os.geteuid()}"
    why = "AUTH=none" if not settings.auth_enabled else "the service is not root"
    return f"{me}, the service's own user ({why})"


def check_unix_account(user: str, unix_user: str, *, admin: bool) -> None:
    """Refuse a token whose jobs could not run here: ``unix_user`` must have an account on this node,
    and only an admin may map to root (uid 0)."""
    try:
        entry = pwd.getpwnam(unix_user)
    except KeyError:
        hint = "" if unix_user != user else "; map it to one with --unix-user"
        raise ConductorError(f"{unix_user!r} has no Unix account on this node{hint}") from None
    if entry.pw_uid == 0 and not admin:
        raise ConductorError(f"{user} would run every job as root ({unix_user!r} is uid 0); "
                             "only an admin (--admin) may")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Users and their tokens.

    ``switch_users`` (default: whether this process is root) says whether callers' jobs run as
    their Unix accounts; the store is only used with AUTH=token.
    """

    def __init__(self, engine: Engine, *, switch_users: bool | None = None) -> None:
        self._sessions = make_sessionmaker(engine)
        self._switch_users = os.geteuid() == 0 if switch_users is None else switch_users

    def create(self, user: str, *, admin: bool = False, accounts: list[str] | None = None,
               unix_user: str | None = None, require_unix_account: bool = False) -> str:
        """Create (or update) the user and return a new token for them: shown once, stored hashed.

        ``unix_user`` maps the user to that Unix account (kept when None).  With
        ``require_unix_account`` the account must exist on this host (check_unix_account).
        """
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = datetime.now(timezone.utc)
        with translate_errors(), self._sessions.begin() as session:
            row = session.get(UserRow, user)
            if row is None:
                row = UserRow(name=user, admin=admin, accounts=list(accounts or []), created_at=now)
                session.add(row)
            else:
                row.admin = admin
                if accounts is not None:
                    row.accounts = list(accounts)
            if unix_user is not None:
                row.unix_user = unix_user
            if require_unix_account:
                check_unix_account(user, row.unix_user or user, admin=admin)
            session.flush()
            session.add(TokenRow(user_name=user, token_sha256=_digest(token), created_at=now, revoked=False))
        return token

    def revoke_all(self, user: str) -> int:
        """Revoke every token of ``user``; returns how many."""
        with translate_errors(), self._sessions.begin() as session:
            return session.execute(update(TokenRow).where(TokenRow.user_name == user, TokenRow.revoked.is_(False))
                                   .values(revoked=True)).rowcount

    def authenticate(self, token: str, *, user: str | None = None) -> Caller | None:
        """The caller a token stands for (and, for Slurm's header pair, only if it is ``user``'s)."""
        with translate_errors(), self._sessions() as session:
            row = session.execute(
                select(UserRow).join(TokenRow, TokenRow.user_name == UserRow.name)
                .where(TokenRow.token_sha256 == _digest(token), TokenRow.revoked.is_(False))).scalar_one_or_none()
            if row is None or (user is not None and row.name != user):
                return None
            return Caller(name=row.name, admin=row.admin, accounts=tuple(row.accounts or ()),
                          unix_user=(row.unix_user or row.name) if self._switch_users else "")
