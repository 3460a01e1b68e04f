"""Who calls: API tokens, stored hashed, and the Caller they stand for.

A token is 32 random bytes (URL-safe text) shown once at creation; only its SHA-256 is
stored, so a copy of the database does not hand out working tokens.  (A fast hash is
enough for a random 256-bit secret; slow hashes are for passwords people choose.)
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from sqlalchemy import Engine, select, update

from conductor import jobs
from conductor.db.models import TokenRow, UserRow
from conductor.exceptions import Forbidden
from conductor.db.errors import translate_errors
from conductor.db.session import make_sessionmaker

#: Prefix that makes a conductor token recognisable in logs and secret scanners.
TOKEN_PREFIX = "cdt_"


@dataclass(frozen=True)
class Caller:
    """The user behind a request.  ``accounts`` None means any account (trusted local mode)."""

    name: str
    admin: bool = False
    accounts: tuple[str, ...] | None = ()

    def may_charge(self, account: str) -> bool:
        return self.accounts is None or account == "" or account in self.accounts

    def may_see(self, job_user: str) -> bool:
        return self.admin or job_user == self.name

    def check_submit(self, spec: jobs.JobSpec) -> jobs.JobSpec:
        """The spec as this caller may submit it: their own user name, their accounts, no admin powers."""
        if self.accounts is None:  # trusted local mode: the request's own user stands
            return spec
        if not self.may_charge(spec.account):
            allowed = ", ".join(self.accounts) or "none"
            raise Forbidden("account", f"{self.name} may not charge {spec.account!r} (allowed: {allowed})")
        if spec.priority and not self.admin:
            raise Forbidden("priority", "only an admin may set a job's priority")
        if spec.hold == "admin" and not self.admin:
            raise Forbidden("hold", "only an admin may hold as admin")
        return replace(spec, user=self.name)


#: The caller when authentication is off: the service trusts whoever reaches it (127.0.0.1).
TRUSTED = Caller(name="", admin=True, accounts=None)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Users and their tokens."""

    def __init__(self, engine: Engine) -> None:
        self._sessions = make_sessionmaker(engine)

    def create(self, user: str, *, admin: bool = False, accounts: list[str] | None = None) -> str:
        """Create (or update) the user and return a new token for them: shown once, stored hashed."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = datetime.now(timezone.utc)
        with translate_errors(), self._sessions.begin() as session:
            row = session.get(UserRow, user)
            if row is None:
                session.add(UserRow(name=user, admin=admin, accounts=list(accounts or []), created_at=now))
            else:
                row.admin = admin
                if accounts is not None:
                    row.accounts = list(accounts)
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
            return Caller(name=row.name, admin=row.admin, accounts=tuple(row.accounts or ()))
