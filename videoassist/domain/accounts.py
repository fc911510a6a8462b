"""Staff accounts: sign-in, creation, disabling. Used by the HTTP API and the CLI."""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Protocol

from videoassist.actors import Actor
from videoassist.auth.passwords import check_policy, hash_password, verify_password
from videoassist.auth.tokens import StaffClaims
from videoassist.domain.refusals import Refusals
from videoassist.errors import BadRequest, NotFound, TooManyRequests, Unauthorized
from videoassist.storage import Store
from videoassist.storage.records import STAFF_ROLES, User

logger = logging.getLogger(__name__)

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
NAME_MAX_LEN = 64
# Unicode categories of characters a name may not hold (check_name): control (Cc),
# format (Cf: the direction controls U+202A-U+202E, U+2066-U+2069, U+200E, U+200F,
# U+061C, zero-width spaces and joiners, the byte order mark), surrogate, private use,
# unassigned, line and paragraph separators.
_NOT_SHOWN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def check_username(username: object) -> str:
    if not isinstance(username, str) or not _USERNAME.match(username):
        raise BadRequest(
            "A username is 1 to 64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit."
        )
    return username


def check_name(value: str, field: str = "The name") -> str:
    """A person's name as others will see it (a display name, whom a link is for), in
    its composed form (NFC) and trimmed: 1 to ``NAME_MAX_LEN`` characters, at least one
    letter or digit, and nothing that is not shown as itself: no control, format or
    private-use character (the direction controls that could make it show reversed,
    zero-width spaces and joiners that make two names look alike), no line or
    paragraph separator, nothing unassigned."""
    value = unicodedata.normalize("NFC", value).strip()
    if not 1 <= len(value) <= NAME_MAX_LEN:
        raise BadRequest(f"{field} must be 1 to {NAME_MAX_LEN} characters.")
    if any(unicodedata.category(c) in _NOT_SHOWN for c in value):
        raise BadRequest(f"{field} must not hold control or invisible characters.")
    if not any(c.isalnum() for c in value):
        raise BadRequest(f"{field} must hold a letter or a digit.")
    return value


def check_staff_role(role: object) -> str:
    if role not in STAFF_ROLES:
        raise BadRequest(f"The role must be one of {', '.join(STAFF_ROLES)}.")
    assert isinstance(role, str)
    return role


@dataclass(frozen=True)
class SignInLimits:
    """At most ``per_user`` failed sign-ins per username and ``per_client`` per client
    address within ``window_s``; then 429 until the oldest leaves the window. Counted
    in the database: by every server process together, and across restarts. An
    attempt counts from its start until its password proves right, so attempts in
    flight count too."""

    per_user: int
    per_client: int
    window_s: float


async def add_user(store: Store, username: str, role: object, password: str | None,
                   display_name: str | None = None, *, actor: Actor) -> User:
    """Add a staff account, audited as ``user.created`` by ``actor`` (an admin, the CLI),
    whoever asks: the API, the CLI, the first start."""
    check_username(username)
    if display_name is not None:
        display_name = check_name(display_name, "display_name")
    role = check_staff_role(role)
    password_hash = None
    if password is not None:
        check_policy(password)
        password_hash = await asyncio.to_thread(hash_password, password)
    user = await store.users.add(username, role, password_hash, display_name)
    await store.audit.record(actor, "user.created", f"user:{user.id}", role=user.role)
    return user


async def set_password(store: Store, user_id: int, password: str, actor: Actor) -> None:
    """Set a user's password (checked against the policy), audited."""
    check_policy(password)
    password_hash = await asyncio.to_thread(hash_password, password)
    await store.users.set_password_hash(user_id, password_hash)
    await store.audit.record(actor, "password.set", f"user:{user_id}")


async def sign_in(
    store: Store, limits: SignInLimits, username: str, password: str, client: str,
    refusals: Refusals,
) -> User:
    """Check a username and password, counting failures; raise 401 or 429. The attempt
    is counted as a failure before the password is checked, and taken back if it was
    right: a burst of guesses sent at once, to any processes, is counted whole."""
    user_key = username.casefold()
    wait, counted = await store.signins.reserve(
        {"user": (user_key, limits.per_user), "client": (client, limits.per_client)},
        limits.window_s)
    if wait > 0:
        await refusals.record(f"client:{client}", "signin.limited", f"username:{username}")
        raise TooManyRequests(retry_after=wait)
    user = await store.users.find(username)
    encoded = await store.users.password_hash(user.id) if user else None
    ok = await asyncio.to_thread(verify_password, password, encoded)
    if not ok or user is None or not user.active:
        await store.audit.record(
            f"client:{client}", "signin.failed", f"username:{username}",
            reason="disabled" if ok and user is not None else "credentials",
        )
        raise Unauthorized("The username or password is not right.")
    await store.signins.succeed("user", user_key)
    await store.signins.forget(counted)
    await store.audit.record(Actor.user(user.id), "signin.ok", f"user:{user.id}", client=client)
    return user


async def find_user(store: Store, username: str) -> User:
    user = await store.users.find(username)
    if user is None:
        raise NotFound(f"No user named {username!r}.")
    return user


class Connections(Protocol):
    """What disabling an account needs of the calls in progress (``Hub`` implements
    it)."""

    async def disconnect_user(self, user_id: int, reason: str) -> int:
        """Close every connection of a staff user, saying why; return how many."""

    async def remove_link_participants(self, invite_ids: set[int]) -> int:
        """Close the participants who came by these join links; return how many."""


@dataclass(frozen=True)
class Disabled:
    """What disabling an account withdrew and closed. The connections are counted in
    the database, whichever server process holds them."""

    invites_revoked: int  # links it made that nobody had used: they answer 410
    used_invites_revoked: int  # join links it made that were used: their tokens end
    connections_closed: int = 0  # its own connections (``account_disabled``)
    participants_removed: int = 0  # people in a call by one of its links (``link_revoked``)


async def disable_user(store: Store, user: User, actor: Actor,
                       connections: Connections | None) -> Disabled:
    """Disable an account and withdraw every link it made, used or not: nobody can
    come in by one any more, and whoever came by one is removed from their call. With
    ``connections`` (this process's calls) those this process holds close now; the
    others, and all of them when the CLI disables (None), are closed by each server
    process's watcher within ``VIDEOASSIST_REVOCATION_POLL_S``. The counts are of every
    connection closed, in whichever process."""
    disabled = await store.users.set_disabled(user.id, True)
    revoked = await store.invites.revoke_created_by(user.id)
    used = {i.id for i in revoked if i.used_at is not None}
    await store.audit.record(actor, "user.disabled", f"user:{user.id}",
                             invites_revoked=len(revoked) - len(used),
                             used_invites_revoked=len(used))
    # Counted after the change (nobody can join as them, or by their links, any more),
    # with those that were there when it was made: any node may have closed them already
    # (the database notified it), and a closed connection leaves the database as it goes.
    closed = await store.calls.connections_of(user_id=user.id, since=disabled.disabled_at)
    removed = await store.calls.connections_of(invite_ids=used, since=disabled.disabled_at)
    if connections is not None:
        await connections.disconnect_user(user.id, "account_disabled")
        await connections.remove_link_participants(used)
    done = Disabled(len(revoked) - len(used), len(used), closed, removed)
    logger.info("user %d disabled by %s; %d open and %d used links revoked", user.id, actor,
                done.invites_revoked, done.used_invites_revoked)
    return done


async def sign_out_connections(store: Store, user: User,
                               connections: Connections | None, since: float) -> int:
    """Close the connections to calls of a user just signed out (a role change, a
    password reset, made at ``since``): this process's now (``connections``), other
    processes' within ``VIDEOASSIST_REVOCATION_POLL_S`` (their watchers see the session
    version change; on PostgreSQL, at once). Return how many they are, in whichever
    process, those already closed since the change included."""
    count = await store.calls.connections_of(user_id=user.id, since=since)
    if connections is not None:
        await connections.disconnect_user(user.id, "signed_out")
    return count


async def enable_user(store: Store, user: User, actor: Actor) -> None:
    await store.users.set_disabled(user.id, False)
    await store.audit.record(actor, "user.enabled", f"user:{user.id}")


async def change_role(store: Store, user: User, role: object, actor: Actor) -> User:
    """Give a user another role; they are signed out everywhere (their pages, tokens and
    calls were made for the old one). The last admin who can sign in stays an admin."""
    role = check_staff_role(role)
    if role == user.role:
        return user
    changed = await store.users.set_role(user.id, role)
    await store.audit.record(actor, "user.role_changed", f"user:{user.id}",
                             before=user.role, after=role)
    logger.info("user %d role %s -> %s by %s", user.id, user.role, role, actor)
    return changed


async def rename(store: Store, user: User, display_name: str | None, actor: Actor) -> User:
    """Set (None: clear) the name others see of a user. Nobody is signed out: a call
    they are in shows the old name until they leave it and join again. The audit row says
    that it changed, not to what (the name is the person's, the log is kept)."""
    if display_name is not None:
        display_name = check_name(display_name, "display_name")
    if display_name == user.display_name:
        return user
    changed = await store.users.set_display_name(user.id, display_name)
    await store.audit.record(actor, "user.renamed", f"user:{user.id}")
    return changed


async def reset_password(store: Store, user: User, actor: Actor) -> User:
    """Forget a user's password and sign them out everywhere; the caller then makes a
    set-password link."""
    changed = await store.users.clear_password(user.id)
    await store.audit.record(actor, "user.password_reset", f"user:{user.id}")
    logger.info("user %d password reset by %s", user.id, actor)
    return changed


async def staff_user_for(store: Store, claims: StaffClaims) -> User:
    """The user a verified staff token names, if it may still act: the account exists,
    is enabled, and has not been signed out since the token was issued."""
    try:
        user = await store.users.get(claims.user_id)
    except NotFound:
        raise Unauthorized() from None
    if not user.active:
        raise Unauthorized("This account is disabled.")
    if claims.session_version != user.session_version:
        raise Unauthorized("You have been signed out; sign in again.")
    return user
