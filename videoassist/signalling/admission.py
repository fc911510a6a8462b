"""Who may be in a call: the credentials an ``auth`` message carries, read into who is
joining which job (``admit``), and the check, on every later message, that they may
still be there (``may_stay``). The ``/ws`` endpoint (``videoassist.api.ws``) asks; the
hub (``hub.py``) lets them in."""

from __future__ import annotations

from dataclasses import dataclass

from videoassist.auth.tokens import PARTICIPANT_AUDIENCE, STAFF_AUDIENCE, TokenService
from videoassist.domain import accounts
from videoassist.errors import Forbidden, Unauthorized
from videoassist.signalling.members import LINK_REVOKED, Member
from videoassist.storage import Store
from videoassist.storage.records import Job

ROLE_NAMES = {"customer": "Customer", "technician": "Technician"}


@dataclass(frozen=True)
class Admission:
    """Who an ``auth`` message lets in, to which job, and until when."""

    job: Job
    role: str
    name: str
    user_id: int | None  # a staff member's account
    invite_id: int | None  # a guest's join link
    expires_at: float
    session_version: int  # a staff member's sign-outs when the token was issued


async def admit(tokens: TokenService, store: Store, token: str, job_id: int | None
                ) -> Admission:
    """Read an ``auth`` message's token (and the job it names) into who may join: a
    staff member whose account is active and not signed out since, naming the job; or
    a guest whose join link for that job stands. The job must be open. Raises
    ``Unauthorized``, ``Forbidden`` or ``NotFound`` (the job) otherwise."""
    audience = tokens.audience_of(token)
    if audience == STAFF_AUDIENCE:
        staff = tokens.verify_staff(token)
        user = await accounts.staff_user_for(store, staff)
        if job_id is None:
            raise Unauthorized("Staff name the job to join: {\"job\": ID}.")
        job = await store.jobs.get(job_id)
        admission = Admission(job, user.role, user.name, user.id, None, staff.expires_at,
                              staff.session_version)
    elif audience == PARTICIPANT_AUDIENCE:
        claims = tokens.verify_participant(token)
        if job_id is not None and job_id != claims.job_id:
            raise Forbidden("This link is for another job.")
        invite = await store.invites.get(claims.invite_id)
        # The invite must still be this job's join link: ids of erased rows may be
        # given again (jobs' never are, see storage/migrations/0004).
        if (invite is None or invite.revoked_at is not None or invite.purpose != "join"
                or invite.job_id != claims.job_id):
            raise Unauthorized(LINK_REVOKED)
        job = await store.jobs.get(claims.job_id)
        admission = Admission(job, claims.role, invite.name or ROLE_NAMES[claims.role],
                              None, invite.id, claims.expires_at, 0)
    else:
        raise Unauthorized()
    if job.status != "open":
        raise Forbidden("This job is closed.")
    return admission


async def may_stay(member: Member, store: Store, *, watched: bool, now: float) -> bool:
    """Whether the sender of a message may still be here: their token has not expired,
    and their account is active and not signed out since, or their link not withdrawn;
    if not, the member is closed, saying why.

    The hub's watcher closes whoever may no longer be here (on any node, whoever made
    the change: the CLI, another process), so while what it last read stands for the
    database (``watched``: ``Watch.current``, notified by PostgreSQL, or its last look
    began within ``watch.TRUSTED_LOOK_S``) a member it has not closed may stay, without a
    read per message. Otherwise (the watcher late: the database slow, or failing) the
    database is read for this member."""
    if now > member.expires_at:
        member.close_expired()
        return False
    if watched:
        return not member.closing
    if member.user_id is not None:
        versions = await store.users.session_versions({member.user_id})
        if member.sign_out_if_stale(versions.get(member.user_id)):
            return False
    elif member.invite_id is not None:
        invite = await store.invites.get(member.invite_id)
        if invite is None or invite.revoked_at is not None:
            member.link_withdrawn()
            return False
    return not member.closing
