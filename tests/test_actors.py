"""Who did something (videoassist/actors.py): one value for the audit log's actor and,
for a staff user, the id their jobs, links and keys are made by."""

from __future__ import annotations

import pytest

from videoassist.actors import CLI, SYSTEM, Actor


def test_an_actor_is_named_as_the_audit_log_names_it() -> None:
    assert [str(a) for a in (Actor.user(12), Actor.api_key(3), Actor.invite(7), CLI, SYSTEM)
            ] == ["user:12", "apikey:3", "invite:7", "cli", "system"]


def test_only_a_staff_user_makes_things_as_a_user() -> None:
    assert Actor.user(12).user_id == 12
    assert [a.user_id for a in (Actor.api_key(3), Actor.invite(7), CLI, SYSTEM)] == [None] * 4


def test_an_actor_is_a_value() -> None:
    """Equal and hashable: call members' rate limits and resent chat are keyed by it."""
    assert Actor.user(12) == Actor("user", 12) and Actor.user(12) != Actor.api_key(12)
    assert len({Actor.user(1), Actor.user(1), CLI}) == 2


@pytest.mark.parametrize(("kind", "id_"), [("user", None), ("invite", None), ("cli", 1),
                                           ("system", 0)])
def test_an_actor_without_its_id_or_with_one_it_cannot_have_is_refused(
        kind: str, id_: int | None) -> None:
    with pytest.raises(ValueError, match="takes"):
        Actor(kind, id_)  # type: ignore[arg-type]
