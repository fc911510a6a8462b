"""``note.add``: notes written from the call, over real sockets into a real store."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.support.server import Server, receive


async def _nothing_but_pong(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Nothing waits for this client: a ping is answered by the next message."""
    await ws.send_json({"type": "ping"})
    assert await receive(ws, skip=("participant.joined",)) == {"type": "pong"}


async def _notes(server: Server, token: str, job_id: int) -> list[dict[str, Any]]:
    status, record, _ = await server.request("GET", f"/api/jobs/{job_id}", token=token)
    assert status == 200, record
    notes: list[dict[str, Any]] = record["notes"]
    return notes


async def test_staff_and_technicians_add_notes_customers_never_see_them(
        server: Server) -> None:
    expert_user, token = await server.staff("expert")
    job_id = await server.job(token)
    expert, _ = await server.join_call(token, job_id)
    technician, _ = await server.join_call(await server.participant(token, job_id, "technician"))
    customer, _ = await server.join_call(await server.participant(token, job_id))
    staff_ws = (expert, technician)

    await expert.send_json({"type": "note.add", "text": "  Replace the expansion vessel.\n"})
    by_expert = [await receive(ws, skip=("participant.joined",)) for ws in staff_ws]
    # A technician invited by link has no staff account: this is how it writes notes.
    await technician.send_json({"type": "note.add", "text": "Vessel pressure 0.4 bar."})
    by_technician = [await receive(ws) for ws in staff_ws]

    recorded = await _notes(server, token, job_id)
    assert [n["text"] for n in recorded] == ["Replace the expansion vessel.",
                                             "Vessel pressure 0.4 bar."]
    assert [(n["user"], n["author"]) for n in recorded] == [
        (expert_user.id, expert_user.username), (None, "Technician")]
    # Both senders and every other non-customer get the note as the record has it.
    assert by_expert == [{"type": "note.added", "note": recorded[0]}] * 2
    assert by_technician == [{"type": "note.added", "note": recorded[1]}] * 2
    await _nothing_but_pong(customer)
    for ws in (*staff_ws, customer):
        await ws.close()


async def test_a_customer_cannot_add_a_note(server: Server) -> None:
    _, token = await server.staff("expert")
    job_id = await server.job(token)
    expert, _ = await server.join_call(token, job_id)
    customer, _ = await server.join_call(await server.participant(token, job_id))
    await customer.send_json({"type": "note.add", "text": "The engineer was rude."})
    error = await receive(customer)
    assert (error["type"], error["code"], error["ref"]) == ("error", "forbidden", "note.add")
    assert await _notes(server, token, job_id) == []
    await _nothing_but_pong(expert)
    await _nothing_but_pong(customer)  # the call goes on
    await expert.close()
    await customer.close()


async def test_a_note_has_the_bounds_of_the_http_route(server: Server) -> None:
    _, token = await server.staff("technician")
    job_id = await server.job(token)
    ws, _ = await server.join_call(token, job_id)
    for text, message in ((" \n\t ", "'text' must not be empty."),
                          ("x" * 4001, "'text' must be at most 4000 characters."),
                          (42, "'text' must be a string.")):
        await ws.send_json({"type": "note.add", "text": text})
        assert await receive(ws) == {"type": "error", "code": "bad_request",
                                     "message": message, "ref": "note.add"}
    await ws.send_json({"type": "note.add", "text": " " + "x" * 4000 + " "})
    added = await receive(ws)
    assert added["note"]["text"] == "x" * 4000
    status, body, _ = await server.request("POST", f"/api/jobs/{job_id}/notes", token=token,
                                           json={"text": "x" * 4001})
    assert (status, body["error"]["message"]) == (400, "text must be at most 4000 characters.")
    assert [n["text"] for n in await _notes(server, token, job_id)] == ["x" * 4000]
    await ws.close()
