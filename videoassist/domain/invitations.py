"""One-time links: join links for a job's call, set-password links for staff.

The token travels only in the URL fragment (``/join#TOKEN``, ``/setup#TOKEN``), so it
never reaches server logs, proxies or a Referer. Opening a link changes nothing; the
token is consumed when the person acts (Join, Set password) by a POST.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from videoassist.actors import Actor
from videoassist.auth.links import hash_link_token, new_link_token
from videoassist.config import Settings
from videoassist.domain.accounts import check_name
from videoassist.errors import BadRequest, Conflict, Gone, NotFound
from videoassist.storage import Store
from videoassist.storage.records import INVITE_ROLES, Invite, Job, User

if TYPE_CHECKING:  # the command line makes links too, without aiohttp (notify, mail)
    from videoassist.sending import Channel, Senders

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Link:
    url: str
    invite: Invite


def check_ttl(settings: Settings, ttl_s: object) -> int:
    if ttl_s is None:
        return settings.invite_ttl_s
    if not isinstance(ttl_s, int) or isinstance(ttl_s, bool):
        raise BadRequest("ttl_s must be a whole number of seconds.")
    if not 60 <= ttl_s <= settings.invite_max_ttl_s:
        raise BadRequest(f"ttl_s must be between 60 and {settings.invite_max_ttl_s} seconds.")
    return ttl_s


async def create_join_link(
    store: Store, settings: Settings, job: Job, role: object, ttl_s: object, actor: Actor,
    name: str | None = None,
) -> Link:
    """A join link for ``job``; ``name``: whom it is for, the name the call shows for
    them instead of their role. The name is not in the audit log nor in the link's own
    events (it is personal data: retention clears it, ``Jobs.purge``)."""
    if name is not None:
        name = check_name(name, "name")
    if role not in INVITE_ROLES:
        raise BadRequest(f"role must be one of {', '.join(INVITE_ROLES)}.")
    assert isinstance(role, str)
    if job.status != "open":
        raise Conflict("The job is closed.")
    ttl = check_ttl(settings, ttl_s)
    token = new_link_token()
    token_hash = hash_link_token(token)
    assert token_hash is not None
    invite = await store.invites.create_join(token_hash, job.id, role, ttl, actor.user_id, name)
    await store.jobs.add_event(job.id, "invite.created", {"invite": invite.id, "role": role})
    await store.audit.record(actor, "invite.created", f"job:{job.id}", invite=invite.id,
                             role=role, expires_at=invite.expires_at)
    return Link(f"{settings.public_url}/join#{token}", invite)


async def send(store: Store, senders: Senders, to: str, job_title: str, link: Link
               ) -> Channel | None:
    """Send a link just made to ``to`` (``sending.recipient``) in the background, and
    remember where it went, for ``resend``: the channel, or None (not sent)."""
    channel = await senders.send(to, job_title, link.url, link.invite)
    if channel is not None:
        await store.invites.set_sent_to(link.invite.id, to)
    return channel


async def resend(store: Store, settings: Settings, senders: Senders, invite: Invite,
                 job: Job, by: User) -> tuple[Link, Channel | None]:
    """Send a new link where an unused one was sent (``sent_to``), for the same role and
    name, valid for the default time, in its place: for a link that expired before it
    was used, or never arrived. The old one is withdrawn first, on the condition that
    it is still unused and not withdrawn, so that a customer opening it meanwhile
    keeps it (409) and two resends at once send one link."""
    if invite.used_at is not None:
        raise Conflict("This link was used: make a new one to invite someone again.")
    if invite.revoked_at is not None:
        raise Conflict("This link was withdrawn: make a new one.")
    if invite.sent_to is None:
        raise Conflict("This link was not sent by the server: make a new one, and send or "
                       "show it.")
    if senders.channel_for(invite.sent_to) is None:
        raise Conflict(f"This server no longer sends links to {invite.sent_to}: make a new "
                       "link, and send or show it.")
    if await store.invites.withdraw_unused(invite.id) is None:
        raise Conflict("This link was used or withdrawn meanwhile.")
    await _withdrawn(store, invite, job, by)
    link = await create_join_link(store, settings, job, invite.role, None, Actor.user(by.id),
                                  invite.name)
    return link, await send(store, senders, invite.sent_to, job.title, link)


async def withdraw(store: Store, invite: Invite, job: Job, by: User) -> Invite:
    """Withdraw a join link (staff, in the console), used or not: the caller removes
    whoever came by it from this process's call; the other processes' watchers do the
    same. One already withdrawn is answered as it is."""
    withdrawn = await store.invites.revoke(invite.id)
    if withdrawn is None:  # withdrawn already (or at once by someone else)
        current = await store.invites.get(invite.id)
        return current if current is not None else invite
    await _withdrawn(store, withdrawn, job, by)
    return withdrawn


async def _withdrawn(store: Store, invite: Invite, job: Job, by: User) -> None:
    await store.jobs.add_event(job.id, "invite.withdrawn",
                               {"invite": invite.id, "role": invite.role, "by": by.id})
    await store.audit.record(Actor.user(by.id), "invite.withdrawn", f"job:{job.id}",
                             invite=invite.id, used=invite.used_at is not None)


async def inviter_name(store: Store, invite: Invite) -> str | None:
    """The name of whoever made a link, as the call shows it (their display name, else
    their username): the person its holder expects. None if the command line made it,
    or the account is gone or disabled."""
    if invite.created_by is None:
        return None
    try:
        user = await store.users.get(invite.created_by)
    except NotFound:
        return None
    return user.name if user.active else None


async def create_password_link(
    store: Store, settings: Settings, user: User, actor: Actor) -> Link:
    token = new_link_token()
    token_hash = hash_link_token(token)
    assert token_hash is not None
    invite = await store.invites.create_password(
        token_hash, user.id, user.role, settings.password_link_ttl_s, actor.user_id
    )
    await store.audit.record(actor, "password_link.created", f"user:{user.id}",
                             invite=invite.id, expires_at=invite.expires_at)
    return Link(f"{settings.public_url}/setup#{token}", invite)


def _stored_form(token: object) -> bytes:
    """The hash a link is stored under; anything not shaped like a token is just Gone."""
    token_hash = hash_link_token(token) if isinstance(token, str) else None
    if token_hash is None:
        raise Gone()
    return token_hash


async def redeem_join(store: Store, token: object, client: str) -> tuple[Invite, Job]:
    """Consume a join link; any reason it cannot be used is the same 410."""
    token_hash = _stored_form(token)
    invite = await store.invites.redeem(token_hash, "join")
    assert invite.job_id is not None
    job = await store.jobs.get(invite.job_id)
    await store.jobs.add_event(job.id, "invite.redeemed", {"invite": invite.id,
                                                          "role": invite.role})
    # The address is a customer's or a link technician's: erased with the job.
    await store.audit.record(Actor.invite(invite.id), "invite.redeemed", f"job:{job.id}",
                             {"client": client})
    if job.status != "open":
        raise Gone("The job this link was for is closed.")
    return invite, job


async def inspect_join(store: Store, token: object) -> tuple[Invite, Job]:
    """What a live join link is for, without consuming it."""
    token_hash = _stored_form(token)
    invite = await store.invites.peek(token_hash, "join")
    assert invite.job_id is not None
    job = await store.jobs.get(invite.job_id)
    if job.status != "open":
        raise Gone()
    return invite, job


async def inspect_password(store: Store, token: object) -> Invite:
    """What a live set-password link is for, without consuming it."""
    token_hash = _stored_form(token)
    return await store.invites.peek(token_hash, "password")


async def redeem_password(store: Store, token: object, client: str) -> Invite:
    token_hash = _stored_form(token)
    invite = await store.invites.redeem(token_hash, "password")
    await store.audit.record(Actor.invite(invite.id), "password_link.redeemed",
                             f"user:{invite.user_id}", client=client)
    return invite


async def remove_participant(store: Store, invite_id: int, participant_id: int, job_id: int,
                             actor: Actor) -> None:
    """A staff member removes a participant who came by a join link from the call: the
    link is withdrawn, so its participant token stops working, for this connection, any
    other one (each server process's watcher closes those) and any later join."""
    await store.invites.revoke(invite_id)
    await store.audit.record(actor, "participant.removed", f"participant:{participant_id}",
                             job=job_id, invite=invite_id)
    logger.info("[job %d participant %d] removed by %s; link %d withdrawn", job_id,
                participant_id, actor, invite_id)
