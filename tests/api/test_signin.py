"""Sign-in, its rate limits, and set-password links."""

from __future__ import annotations

from tests.support.server import PASSWORD, Server, ServerFactory


async def test_sign_in_returns_a_session_that_works(server: Server) -> None:
    user = await server.add_user("expert")
    status, body, _ = await server.request(
        "POST", "/api/session", json={"username": user.username, "password": PASSWORD})
    assert status == 200
    assert body["user"] == {"id": user.id, "username": user.username, "role": "expert",
                            "display_name": None, "name": user.username}
    assert body["sending"] == {"email": None, "sms": None}
    status, me, _ = await server.request("GET", "/api/session", token=body["token"])
    assert (status, me["user"]["id"]) == (200, user.id)


async def test_wrong_password_unknown_user_and_disabled_user_look_alike(server: Server) -> None:
    user = await server.add_user("expert")
    disabled = await server.add_user("technician")
    await server.store.users.set_disabled(disabled.id, True)
    answers = []
    for username, password in [(user.username, "wrong password!"), ("nobody", PASSWORD),
                               (disabled.username, PASSWORD)]:
        status, body, _ = await server.request(
            "POST", "/api/session", json={"username": username, "password": password})
        answers.append((status, body))
    assert [a[0] for a in answers] == [401, 401, 401]
    assert answers[0][1] == answers[1][1] == answers[2][1]


async def test_failed_sign_ins_are_limited_per_username(server: Server) -> None:
    user = await server.add_user("expert")
    limit = server.settings.signin_max_failures
    for _ in range(limit):
        status, _, _ = await server.request(
            "POST", "/api/session", json={"username": user.username, "password": "x" * 12})
        assert status == 401
    # Locked now, even with the right password...
    status, body, headers = await server.request(
        "POST", "/api/session", json={"username": user.username, "password": PASSWORD})
    assert status == 429
    assert body["error"]["code"] == "rate_limited"
    assert 1 <= int(headers["Retry-After"]) <= server.settings.signin_window_s
    # ...other users are not...
    other = await server.add_user("expert")
    await server.sign_in(other.username)
    # ...and the lock lifts when the window has passed.
    server.clock.advance(server.settings.signin_window_s + 1)
    await server.sign_in(user.username)


async def test_failed_sign_ins_are_limited_per_client(server_factory: ServerFactory) -> None:
    server = await server_factory(signin_max_failures=100, signin_max_failures_per_client=3)
    user = await server.add_user("expert")
    for n in range(3):
        status, _, _ = await server.request(
            "POST", "/api/session", json={"username": f"guess{n}", "password": "x" * 12})
        assert status == 401
    status, _, _ = await server.request(
        "POST", "/api/session", json={"username": user.username, "password": PASSWORD})
    assert status == 429
    audit = await server.store.audit.recent()
    assert {"signin.failed", "signin.limited"} <= {row["action"] for row in audit}


async def test_malformed_sign_in_bodies_get_400(server: Server) -> None:
    cases = [
        ({"Content-Type": "application/json"}, "{not json"),
        ({"Content-Type": "application/json"}, "[1, 2]"),
        ({"Content-Type": "text/plain"}, '{"username": "a", "password": "b"}'),
        ({"Content-Type": "application/json"}, '{"username": 5, "password": "b"}'),
        ({"Content-Type": "application/json"}, '{"username": "a"}'),
        ({"Content-Type": "application/json"}, '{"username": "a", "password": ""}'),
        # Lone surrogates: valid JSON, no valid text (this was a 500 from SQLite).
        ({"Content-Type": "application/json"}, '{"username": "a\\ud800", "password": "b"}'),
        ({"Content-Type": "application/json"}, '{"username": "a", "password": "\\udc80"}'),
    ]
    for headers, data in cases:
        status, body, _ = await server.request("POST", "/api/session", headers=headers,
                                               data=data)
        assert status == 400, (data, body)
        assert body["error"]["code"] == "bad_request"


async def test_an_oversized_body_gets_413_and_no_traceback(server: Server) -> None:
    status, body, _ = await server.request(
        "POST", "/api/session", headers={"Content-Type": "application/json"},
        data='{"username": "' + "a" * 300_000 + '"}')
    assert status == 413
    assert "Traceback" not in str(body)


async def test_a_password_link_sets_the_password_once(server: Server) -> None:
    user = await server.add_user("expert", password=None)
    link = await server.password_link(user)
    weak = await server.request("POST", "/api/password",
                                json={"token": link, "password": "short"})
    assert weak[0] == 400  # a weak password does not burn the link
    status, body, _ = await server.request(
        "POST", "/api/password", json={"token": link, "password": "a good long password"})
    assert status == 200
    assert body["user"]["username"] == user.username
    await server.sign_in(user.username, "a good long password")
    again = await server.request("POST", "/api/password",
                                 json={"token": link, "password": "another long password"})
    assert again[0] == 410
    await server.sign_in(user.username, "a good long password")


async def test_a_newer_password_link_revokes_the_older(server: Server) -> None:
    user = await server.add_user("expert", password=None)
    first = await server.password_link(user)
    second = await server.password_link(user)
    status, _, _ = await server.request("POST", "/api/password",
                                        json={"token": first, "password": "a good long password"})
    assert status == 410
    status, _, _ = await server.request("POST", "/api/password",
                                        json={"token": second, "password": "a good long password"})
    assert status == 200


async def test_a_disabled_users_password_link_is_refused_and_kept(server: Server) -> None:
    user = await server.add_user("expert", password=None)
    link = await server.password_link(user)
    await server.store.users.set_disabled(user.id, True)
    body = {"token": link, "password": "a good long password"}
    assert (await server.request("POST", "/api/password", json=body))[0] == 401
    await server.store.users.set_disabled(user.id, False)
    assert (await server.request("POST", "/api/password", json=body))[0] == 200
