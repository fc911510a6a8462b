"""The security headers are on every response: pages, API, static files, errors."""

from __future__ import annotations

from tests.support.server import Server
from videoassist.api.middleware import SECURITY_HEADERS


async def test_every_route_answers_with_the_security_headers(server: Server) -> None:
    _, token = await server.staff("admin")
    job_id = await server.job(token)
    paths: list[tuple[str, str]] = []
    for resource in server.app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter") or ""
        if "directory" in info:
            path = info["prefix"] + "/css/app.css"
        path = path.replace("{id}", str(job_id))
        for route in resource:
            if route.method != "HEAD":
                paths.append((route.method, path))
    assert len(paths) >= 15
    paths += [("GET", "/nope"), ("GET", "/static/../../etc/passwd"),
              ("DELETE", "/api/jobs")]
    for method, path in paths:
        _, _, headers = await server.request(method, path, token=token,
                                             json={} if method == "POST" else None)
        for name, value in SECURITY_HEADERS.items():
            assert headers.get(name) == value, (method, path, name)


async def test_csp_forbids_inline_script_and_workers(server: Server) -> None:
    _, _, headers = await server.request("GET", "/join")
    csp = {part.split()[0]: part.split()[1:] for part in
           headers["Content-Security-Policy"].split("; ")}
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["worker-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert "camera=(self)" in headers["Permissions-Policy"]
    assert "microphone=(self)" in headers["Permissions-Policy"]


async def test_errors_are_json_without_tracebacks(server: Server) -> None:
    status, body, _ = await server.request("GET", "/api/jobs/abc",
                                           token=(await server.staff())[1])
    assert status == 400
    assert set(body["error"]) == {"code", "message"}
    status, body, _ = await server.request("GET", "/no/such/page")
    assert status == 404
    assert body == {"error": {"code": "not_found", "message": "Not Found"}}
    status, body, headers = await server.request("PUT", "/api/session")
    assert status == 405
    assert body["error"]["code"] == "method_not_allowed"
    assert "Allow" in headers


async def test_health_and_readiness(server: Server) -> None:
    assert (await server.request("GET", "/healthz"))[:2] == (200, {"status": "ok"})
    assert (await server.request("GET", "/readyz"))[:2] == (200, {"status": "ready"})
