from tests.support.server import Server, leave, receive


async def test_staff_and_customer_meet_in_a_call(server: Server) -> None:
    _, staff_token = await server.staff("expert")
    job_id = await server.job(staff_token)
    customer_token = await server.participant(staff_token, job_id)
    expert_ws, joined = await server.join_call(staff_token, job_id)
    assert joined["participants"] == []
    customer_ws, joined = await server.join_call(customer_token)
    assert [p["role"] for p in joined["participants"]] == ["expert"]
    seen = await receive(expert_ws)
    assert seen["type"] == "participant.joined"
    assert seen["participant"]["role"] == "customer"
    await customer_ws.send_json({"type": "chat.message", "text": "hello"})
    for ws in (expert_ws, customer_ws):
        message = await receive(ws)
        assert message["type"] == "chat.message"
        assert message["message"]["text"] == "hello"
    await leave(customer_ws)
    left = await receive(expert_ws)
    assert left["type"] == "participant.left"
    await leave(expert_ws)
