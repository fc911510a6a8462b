"""compose.yaml, validated as far as a machine without a container engine allows.

Nothing here starts a container: these machines have no Docker engine. What can be
checked is:

- the file itself, by Debian's ``docker-compose`` (1.29), whose ``config`` command
  validates it against the Compose schema and resolves ``.env`` without an engine
  (DOCKER_HOST points at a socket nobody listens on, to show it needs none);
- what the file gives the nodes, by videoassist's own settings loader: every
  ``VIDEOASSIST_*`` name is a setting documented in docs/configuration.md, the values
  load, the nodes share what a fleet must share (so that the key files a node would
  otherwise generate into its data directory are never made), media ports and
  internal ports do not collide, the stop grace period covers the drain;
- what it relies on elsewhere: the Dockerfile (command, data volume, user), the
  shipped turn/turnserver.conf (mounted as is, filled in by
  deploy/compose/coturn/start.sh, which runs Debian's coturn here for real), and
  deploy/compose/nginx.conf, which must be docs/deploy.md's site with the compose's
  upstream, passes ``nginx -t`` and runs for real in front of two ``videoassist
  serve`` nodes on a throwaway PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support import nginx
from tests.support.certs import self_signed
from tests.support.databases import Cluster
from tests.support.docs import ROOT, fenced_blocks
from tests.support.fleet import Fleet, shared_secrets
from tests.support.process import clean_env
from tests.support.server import free_port
from videoassist import keyfiles
from videoassist.config import ENV_PREFIX, Secret, Settings, load_settings
from videoassist.media.turn import turn_credentials

COMPOSE = ROOT / "compose.yaml"
ENV_EXAMPLE = ROOT / "deploy" / "compose" / "env.example"
NGINX_CONF = ROOT / "deploy" / "compose" / "nginx.conf"
COTURN_START = ROOT / "deploy" / "compose" / "coturn" / "start.sh"
COTURN_DOCKERFILE = ROOT / "deploy" / "compose" / "coturn" / "Dockerfile"
SHIPPED_TURN = ROOT / "turn" / "turnserver.conf"
DOCKERFILE = ROOT / "Dockerfile"
DOCKER_COMPOSE = shutil.which("docker-compose") or "/usr/bin/docker-compose"
# docker-compose's own interpreter has PyYAML (python3-yaml, a dependency of Debian's
# docker-compose); the test environment has not.
DEBIAN_PYTHON = "/usr/bin/python3"
NODES = ("node1", "node2")
SERVICES = {"postgres", "migrate", *NODES, "coturn", "nginx"}
# What every node of a fleet must have alike (docs/deploy.md, Fleet).
FLEET_SHARED = ("DATABASE_URL", "JWT_KEYS", "SNAPSHOT_KEY", "NODE_SECRET", "TURN_SECRET",
                "WEBHOOK_SECRET", "PUBLIC_URL")
# The most workers a node may start on a machine before its internal ports would run
# into the other node's (9100 + N, 9200 + N).
MAX_WORKERS = 64
CHECK_TIMEOUT_S = 60

pytestmark = pytest.mark.skipif(not Path(DOCKER_COMPOSE).exists(),
                                reason="Debian's docker-compose is not installed")


def filled_env(directory: Path) -> dict[str, str]:
    """A filled-in .env: every variable of env.example, secrets made as it says."""
    cert_dir = directory / "certs"
    cert_dir.mkdir(exist_ok=True)
    shared = shared_secrets()
    return {
        "POSTGRES_PASSWORD": secrets.token_hex(24), "POSTGRES_PORT": "5432",
        "PUBLIC_URL": "https://assist.example.com", "TLS_CERT_DIR": str(cert_dir),
        "COMPANY_NAME": "Acme Heating", "MEDIA_ADDRESSES": "eth0",
        "MEDIA_ANNOUNCED_ADDRESS": "", "TURN_HOST": "turn.example.com",
        "TURN_CERT_DIR": str(cert_dir), "TURN_EXTERNAL_IP": "", "TURN_ALLOWED_PEER_IP": "",
        "WEBHOOK_URL": "https://hooks.example.com/videoassist",
        **{name: shared[name] for name in (
            "VIDEOASSIST_JWT_KEYS", "VIDEOASSIST_SNAPSHOT_KEY", "VIDEOASSIST_NODE_SECRET",
            "VIDEOASSIST_TURN_SECRET", "VIDEOASSIST_WEBHOOK_SECRET")},
    }


def write_env(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def compose(env_file: Path, *args: str, file: Path = COMPOSE,
            no_engine: Path | None = None) -> subprocess.CompletedProcess[str]:
    """docker-compose on ``file`` (paths relative to the repository root) with no engine:
    DOCKER_HOST names a socket that does not exist."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "COMPOSE_"))}
    env["DOCKER_HOST"] = f"unix://{no_engine or env_file.parent / 'no-engine.sock'}"
    return subprocess.run(
        [DOCKER_COMPOSE, "--project-directory", str(ROOT), "--env-file", str(env_file),
         "-f", str(file), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)


def as_data(yaml_text: str) -> Any:
    done = subprocess.run(
        [DEBIAN_PYTHON, "-c",
         "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
        input=yaml_text, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S, check=True)
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def env_values(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return filled_env(tmp_path_factory.mktemp("compose-env"))


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory,
             env_values: dict[str, str]) -> dict[str, Any]:
    """compose.yaml as docker-compose resolves it with a filled-in .env."""
    directory = tmp_path_factory.mktemp("compose")
    done = compose(write_env(directory / ".env", env_values), "config")
    assert done.returncode == 0, done.stderr
    config = as_data(done.stdout)
    assert isinstance(config, dict)
    return config


def node_env(resolved: dict[str, Any], name: str) -> dict[str, str]:
    env = resolved["services"][name]["environment"]
    assert isinstance(env, dict)
    return {k: str(v) for k, v in env.items()}


def dockerfile_env() -> dict[str, str]:
    """The ENV the image sets (VIDEOASSIST_DATA_DIR and the rest), as the nodes get it."""
    text = DOCKERFILE.read_text()
    found = dict(re.findall(r"^\s*(VIDEOASSIST_[A-Z_]+)=(\S+)", text, flags=re.MULTILINE))
    assert "VIDEOASSIST_DATA_DIR" in found, "the Dockerfile sets no VIDEOASSIST_DATA_DIR"
    return found


def node_settings(resolved: dict[str, Any], name: str, **overrides: Any) -> Settings:
    return load_settings({**dockerfile_env(), **node_env(resolved, name)}, **overrides)


# -- the file, as Compose reads it --------------------------------------------------


def test_docker_compose_validates_the_file_with_no_engine(resolved: dict[str, Any]) -> None:
    assert set(resolved["services"]) == SERVICES


def test_docker_compose_refuses_what_the_schema_does_not_allow(tmp_path: Path,
                                                               env_values: dict[str, str]) -> None:
    """The validation above can fail: a misspelt key in a node is refused."""
    text = COMPOSE.read_text()
    assert text.count("\n  node1:\n") == 1
    broken = tmp_path / "compose.yaml"
    broken.write_text(text.replace("\n  node1:\n", "\n  node1:\n    stop_grace_periode: 1s\n"))
    done = compose(write_env(tmp_path / ".env", env_values), "config", file=broken)
    assert done.returncode != 0
    assert "stop_grace_periode" in done.stderr


def test_every_variable_is_in_env_example_and_required_ones_are_asked_for(
        tmp_path: Path) -> None:
    used = set(re.findall(r"\$\{([A-Z_]+)", COMPOSE.read_text()))
    example = dict(re.findall(r"^([A-Z_]+)=(.*)$", ENV_EXAMPLE.read_text(), flags=re.MULTILINE))
    assert used == set(example), "compose.yaml and deploy/compose/env.example disagree"
    required = set(re.findall(r"\$\{([A-Z_]+):\?", COMPOSE.read_text()))
    assert {"POSTGRES_PASSWORD", "PUBLIC_URL", "VIDEOASSIST_NODE_SECRET"} <= required
    # env.example as it is resolves (its placeholders are values)...
    done = compose(ENV_EXAMPLE, "config", "--quiet", no_engine=tmp_path / "no-engine.sock")
    assert done.returncode == 0, done.stderr
    # ...and with each required variable missing, Compose stops and names it.
    for name in sorted(required):
        values = {k: v for k, v in example.items() if k != name}
        done = compose(write_env(tmp_path / f"{name}.env", values), "config", "--quiet")
        assert done.returncode != 0, f"compose.yaml runs without {name}"
        assert f"set {name} in .env" in done.stderr


def test_no_secret_is_written_in_the_file() -> None:
    """Every secret setting, and PostgreSQL's password, is a reference to .env."""
    text = COMPOSE.read_text()
    hints = typing.get_type_hints(Settings)
    secret_names = [ENV_PREFIX + name.upper() for name, hint in hints.items()
                    if Secret in typing.get_args(hint)]
    assert len(secret_names) >= 6
    for name in [*secret_names, "POSTGRES_PASSWORD", "TURN_SECRET"]:
        for value in re.findall(rf"^\s*{name}: (.*)$", text, flags=re.MULTILINE):
            if name == "VIDEOASSIST_DATABASE_URL":
                assert ":${POSTGRES_PASSWORD" in value and "@" in value, value
            else:
                assert value.startswith("${") and value.endswith("}"), f"{name}: {value}"


# -- PostgreSQL and the migrations ----------------------------------------------------


def test_postgresql_with_a_named_volume_a_health_check_and_migrations_run_once(
        resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    postgres = services["postgres"]
    assert re.fullmatch(r"postgres:\d+(-bookworm)?", postgres["image"]), postgres["image"]
    [volume] = postgres["volumes"]
    named, target, _ = volume.split(":")
    assert named in resolved["volumes"] and target == "/var/lib/postgresql/data"
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    # Published on the loopback only, where the nodes (host network) reach it.
    [port] = postgres["ports"]
    host, published, inside = port.removesuffix("/tcp").split(":")
    assert host == "127.0.0.1" and inside == "5432"
    migrate = services["migrate"]
    assert migrate["command"] == ["videoassist", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    url = node_env(resolved, "migrate")["VIDEOASSIST_DATABASE_URL"]
    for name in NODES:
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}}
        assert node_env(resolved, name)["VIDEOASSIST_DATABASE_URL"] == url
    # The nodes' URL names the database, user and password the postgres service makes.
    env = node_env(resolved, "postgres")
    assert url == (f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}"
                   f"@127.0.0.1:{published}/{env['POSTGRES_DB']}")


def test_the_migrate_service_migrates_an_empty_database_and_runs_again_harmlessly(
        resolved: dict[str, Any], tmp_path: Path, postgresql_cluster: Cluster) -> None:
    """`videoassist migrate` with the migrate service's environment (its URL pointed at
    a throwaway database): it applies the migrations, and a second run (each `docker
    compose up` runs it again) applies none and succeeds too."""
    env = {**dockerfile_env(), **node_env(resolved, "migrate")}
    assert set(env) - set(dockerfile_env()) == {"VIDEOASSIST_DATABASE_URL"}
    env["VIDEOASSIST_DATABASE_URL"] = postgresql_cluster.create_database()
    env["VIDEOASSIST_DATA_DIR"] = str(tmp_path / "data")  # the image's /data
    command = resolved["services"]["migrate"]["command"]
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", *command], env=clean_env(**env),
                              capture_output=True, text=True, timeout=CHECK_TIMEOUT_S,
                              cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        runs.append(done.stdout.count("applied migration"))
    assert runs[0] > 0 and runs[1] == 0, runs


# -- the nodes ------------------------------------------------------------------------


def test_every_videoassist_name_is_a_documented_setting(resolved: dict[str, Any]) -> None:
    fields = {ENV_PREFIX + name.upper() for name in Settings.__dataclass_fields__}
    documented = set(re.findall(r"^\| `(VIDEOASSIST_[A-Z_]+)` \|",
                                (ROOT / "docs" / "configuration.md").read_text(),
                                flags=re.MULTILINE))
    used = set(re.findall(r"\bVIDEOASSIST_[A-Z_]+", COMPOSE.read_text()))
    used |= {name for service in resolved["services"].values()
             for name in (service.get("environment") or {}) if name.startswith(ENV_PREFIX)}
    assert used, "no VIDEOASSIST_* name found"
    assert used <= fields, f"not settings: {sorted(used - fields)}"
    assert used <= documented, f"not in configuration.md: {sorted(used - documented)}"


def test_the_nodes_settings_load_and_the_fleet_shares_what_it_must(
        resolved: dict[str, Any], tmp_path: Path) -> None:
    envs = [node_env(resolved, name) for name in NODES]
    for name in FLEET_SHARED:
        values = {env.get(ENV_PREFIX + name) for env in envs}
        assert len(values) == 1 and values != {""} and values != {None}, name
    for name in NODES:
        settings = node_settings(resolved, name, data_dir=tmp_path / name)
        assert settings.database_url is not None
        assert settings.trust_forwarded_for and settings.public_url.startswith("https://")
        assert settings.turn_urls and settings.webhook_url
        # With the shared secrets set, a node makes no key file of its own: its data
        # directory stays empty (a node making its own would refuse the other's tokens).
        keyfiles.prepare(settings)
        assert not settings.data_dir.exists() or not any(settings.data_dir.iterdir()), \
            sorted(p.name for p in settings.data_dir.iterdir())
        assert Path(dockerfile_env()["VIDEOASSIST_DATA_DIR"]) == Path("/data")
        [volume] = resolved["services"][name]["volumes"]
        assert volume == f"{name}-data:/data:rw" and f"{name}-data" in resolved["volumes"]


def test_ports_media_ranges_and_internal_addresses_do_not_collide(
        resolved: dict[str, Any]) -> None:
    settings = [node_settings(resolved, name) for name in NODES]
    assert all(s.host == "127.0.0.1" and s.internal_host == "127.0.0.1" for s in settings)
    assert len({s.port for s in settings}) == len(settings)
    taken: list[range] = [range(s.port, s.port + 1) for s in settings]
    taken += [range(s.internal_port, s.internal_port + MAX_WORKERS) for s in settings]
    tcp = sorted(taken, key=lambda r: r.start)
    assert all(a.stop <= b.start for a, b in itertools.pairwise(tcp)), tcp
    media = []
    for s in settings:
        span = s.media_port_range
        assert span is not None
        media.append(range(span[0], span[1] + 1))
    media.sort(key=lambda r: r.start)
    assert all(a.stop <= b.start for a, b in itertools.pairwise(media)), media
    # Within the range docs/deploy.md tells ops to open, and apart from coturn's relays.
    assert media[0].start == 40000 and media[-1].stop == 41000
    turn = dict(re.findall(r"^(min-port|max-port)=(\d+)$", SHIPPED_TURN.read_text(),
                           flags=re.MULTILINE))
    assert media[-1].stop <= int(turn["min-port"])
    assert "40000-40999" in (ROOT / "docs" / "deploy.md").read_text()


def test_stop_grace_period_covers_the_drain_and_file_limits_are_raised(
        resolved: dict[str, Any]) -> None:
    for name in NODES:
        service = resolved["services"][name]
        match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", service["stop_grace_period"])
        assert match, service["stop_grace_period"]
        grace = int(match.group(1) or 0) * 60 + int(match.group(2) or 0)
        drain = node_settings(resolved, name).drain_timeout_s
        assert grace >= drain + 10, (grace, drain)
        assert service["ulimits"]["nofile"]["soft"] >= 65536
        assert service["network_mode"] == "host" and "pid" not in service


def test_the_health_check_asks_readyz_on_the_nodes_own_port(resolved: dict[str, Any]) -> None:
    for name in NODES:
        test = resolved["services"][name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"] and "/readyz" in test[3]
        assert "VIDEOASSIST_PORT" in test[3] and "VIDEOASSIST_PORT" in node_env(resolved, name)


def test_the_image_is_the_dockerfiles(resolved: dict[str, Any]) -> None:
    text = DOCKERFILE.read_text()
    assert 'CMD ["videoassist", "serve"]' in text
    assert 'VOLUME ["/data"]' in text and re.search(r"^USER videoassist$", text, re.MULTILINE)
    assert re.search(r"^FROM python:3\.11", text, re.MULTILINE), "the health check runs python"
    images = {resolved["services"][name]["image"] for name in ("migrate", *NODES)}
    assert len(images) == 1
    for name in ("migrate", *NODES):
        assert Path(resolved["services"][name]["build"]["context"]) == ROOT
        assert "command" not in resolved["services"][name] or name == "migrate"


# -- coturn ---------------------------------------------------------------------------


def test_coturn_mounts_the_shipped_configuration(resolved: dict[str, Any]) -> None:
    coturn = resolved["services"]["coturn"]
    mounts = [str(v) for v in coturn["volumes"]]
    assert f"{SHIPPED_TURN}:/etc/coturn/turnserver.conf:ro" in mounts
    assert "TURN_CONFIG:-/etc/coturn/turnserver.conf" in COTURN_START.read_text()
    assert any(m.endswith(":/etc/coturn/certs:ro") for m in mounts)
    for line in ("cert=/etc/coturn/certs/fullchain.pem", "pkey=/etc/coturn/certs/privkey.pem"):
        assert line in SHIPPED_TURN.read_text().splitlines()
    env = node_env(resolved, "coturn")
    for name in NODES:
        nodes = node_env(resolved, name)
        assert env["TURN_SECRET"] == nodes["VIDEOASSIST_TURN_SECRET"]
        # The nodes' turns: URL is on the TLS port start.sh gives coturn.
        assert f"turns:{env['TURN_REALM']}:5349?transport=tcp" in nodes["VIDEOASSIST_TURN_URLS"]
    assert 'TURN_TLS_PORT:-5349' in COTURN_START.read_text()
    dockerfile = COTURN_DOCKERFILE.read_text()
    assert "FROM debian:bookworm" in dockerfile and "install -y --no-install-recommends coturn" \
        in dockerfile
    assert Path(resolved["services"]["coturn"]["build"]["context"]) == COTURN_DOCKERFILE.parent


def _uclient(port: int, secret: str) -> str:
    ice = turn_credentials(secret, [f"turn:127.0.0.1:{port}"], 600, "compose-test", time.time())
    done = subprocess.run(
        ["turnutils_uclient", "-c", "-n", "1", "-m", "1", "-p", str(port),
         "-u", str(ice["username"]), "-w", str(ice["credential"]),
         "-e", "127.0.0.1", "-r", "9", "127.0.0.1"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=CHECK_TIMEOUT_S)
    return done.stdout + done.stderr


def test_coturn_start_fills_in_the_shipped_file_and_debians_coturn_runs_it(
        tmp_path: Path) -> None:
    """start.sh with the shipped file, then Debian's turnserver with its result, on
    loopback ports (command-line options take precedence over the file): coturn serves
    TLS on the port given; credentials made with the secret given get an allocation and
    then the shipped deny list's 403 for a loopback peer; others get no allocation."""
    if shutil.which("turnserver") is None:
        pytest.skip("Debian's coturn is not installed")
    turn_secret = secrets.token_hex(16) + "|&\\"
    cert, key = self_signed(tmp_path)
    port, tls_port = free_port(), free_port()
    env = {**os.environ, "TURN_SECRET": turn_secret, "TURN_REALM": "turn.test",
           "TURN_CONFIG": str(SHIPPED_TURN), "TURN_RUNTIME_CONFIG": str(tmp_path / "rt.conf"),
           "TURN_TLS_PORT": str(tls_port), "TURN_PIDFILE": str(tmp_path / "turn.pid"),
           "TURN_EXTERNAL_IP": "", "TURN_ALLOWED_PEER_IP": ""}
    log = tmp_path / "coturn.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [str(COTURN_START), "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
             f"--listening-port={port}", f"--cert={cert}", f"--pkey={key}",
             f"--userdb={tmp_path / 'turndb'}"],
            env=env, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        assert _wait_tls(tls_port, proc, log)
        runtime = (tmp_path / "rt.conf").read_text()
        assert oct((tmp_path / "rt.conf").stat().st_mode & 0o777) == "0o600"
        shipped = SHIPPED_TURN.read_text().splitlines()
        changed = [(a, b) for a, b in zip(shipped, runtime.splitlines(), strict=True) if a != b]
        assert changed == [("static-auth-secret=CHANGE_ME", f"static-auth-secret={turn_secret}"),
                           ("realm=turn.example.com", "realm=turn.test"),
                           ("tls-listening-port=443", f"tls-listening-port={tls_port}")]
        good = _uclient(port, turn_secret)
        assert "403 (Forbidden IP)" in good, good
        bad = _uclient(port, "another secret")
        assert "403 (Forbidden IP)" not in bad and "Cannot complete Allocation" in bad, bad
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _wait_tls(port: int, proc: subprocess.Popen[bytes], log: Path) -> bool:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + 15
    while True:
        assert proc.poll() is None, log.read_text(errors="replace")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as raw, \
                    context.wrap_socket(raw) as tls:
                return tls.version() is not None
        except OSError:
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.1)


def test_coturn_start_refuses_a_file_that_is_not_the_shipped_one(tmp_path: Path) -> None:
    other = tmp_path / "turnserver.conf"
    other.write_text(SHIPPED_TURN.read_text().replace("static-auth-secret=CHANGE_ME",
                                                      "static-auth-secret=edited"))
    done = subprocess.run(
        [str(COTURN_START), "--version"], capture_output=True, text=True, timeout=30,
        env={**os.environ, "TURN_SECRET": "x" * 20, "TURN_REALM": "turn.test",
             "TURN_CONFIG": str(other), "TURN_RUNTIME_CONFIG": str(tmp_path / "rt.conf")})
    assert done.returncode != 0 and "not turn/turnserver.conf as shipped" in done.stderr


# -- nginx ----------------------------------------------------------------------------

UPSTREAM = re.compile(r"(?:#[^\n]*\n)*upstream videoassist \{.*?\n\}", re.DOTALL)
# What the compose's nginx file changes in docs/deploy.md's site, besides the upstream.
NGINX_PATHS = [
    ("/etc/letsencrypt/live/assist.example.com/fullchain.pem", "/etc/nginx/certs/fullchain.pem"),
    ("/etc/letsencrypt/live/assist.example.com/privkey.pem", "/etc/nginx/certs/privkey.pem"),
    ("/var/log/nginx/videoassist.access.log", "/var/log/nginx/access.log"),
]


def compose_site() -> tuple[str, str]:
    """deploy/compose/nginx.conf without its header comment: (the site, its upstream)."""
    text = NGINX_CONF.read_text()
    header, sep, site = text.partition("\n\n")
    assert sep and all(line.startswith("#") for line in header.splitlines())
    [upstream] = UPSTREAM.findall(site)
    return site.rstrip("\n"), upstream


def test_nginx_conf_is_the_documented_site_with_the_compose_upstream() -> None:
    [documented] = [b.body for b in fenced_blocks("deploy.md") if b.info == "nginx"]
    site, upstream = compose_site()
    expected, count = UPSTREAM.subn(lambda _: upstream, documented)
    assert count == 1
    for old, new in NGINX_PATHS:
        assert expected.count(old) == 1, old
        expected = expected.replace(old, new)
    assert site == expected, "deploy/compose/nginx.conf differs from docs/deploy.md's site"


def test_nginx_upstream_lists_the_nodes_as_the_fleet_section_does(
        resolved: dict[str, Any]) -> None:
    [fleet] = [b.body for b in fenced_blocks("deploy.md") if b.info == "nginx fleet"]
    [params] = {p for _, p in re.findall(r"^    server (\S+) (.*);$", fleet, flags=re.MULTILINE)}
    _, upstream = compose_site()
    servers = re.findall(r"^    server (\S+) (.*);$", upstream, flags=re.MULTILINE)
    nodes = [node_settings(resolved, name) for name in NODES]
    assert servers == [(f"{s.host}:{s.port}", params) for s in nodes]
    assert [line for line in upstream.splitlines() if not line.startswith(("#", "    server"))] \
        == [line for line in fleet[fleet.index("upstream"):].splitlines()
            if not line.startswith("    server")]
    service = resolved["services"]["nginx"]
    assert re.fullmatch(r"nginx:[\d.]+-bookworm", service["image"])
    mounts = [str(v) for v in service["volumes"]]
    assert f"{NGINX_CONF}:/etc/nginx/conf.d/default.conf:ro" in mounts
    assert any(m.endswith(":/etc/nginx/certs:ro") for m in mounts)
    assert service["network_mode"] == "host"


def nginx_for_test(directory: Path, node_ports: list[int]) -> tuple[Path, int]:
    """deploy/compose/nginx.conf inside a main configuration of the test's own (as the
    image's nginx.conf includes it in its http block), with test certificates, loopback
    listeners and the nodes on these ports. Its configuration and TLS port."""
    cert, key = self_signed(directory)
    tls_port, http_port = free_port(), free_port()
    site, _ = compose_site()
    site = nginx.replace_once(site, [
        *nginx.listen_on_loopback(tls_port, http_port),
        ("/etc/nginx/certs/fullchain.pem", str(cert)),
        ("/etc/nginx/certs/privkey.pem", str(key)),
        ("/var/log/nginx/access.log", str(directory / "access.log")),
        ("server 127.0.0.1:8081 ", f"server 127.0.0.1:{node_ports[0]} "),
        ("server 127.0.0.1:8082 ", f"server 127.0.0.1:{node_ports[1]} "),
    ], "deploy/compose/nginx.conf")
    conf = nginx.write_conf(directory, site, error_log=directory / "error.log")
    return conf, tls_port


def test_nginx_accepts_the_compose_configuration(tmp_path: Path) -> None:
    conf, _ = nginx_for_test(tmp_path, [free_port(), free_port()])
    done = subprocess.run(nginx.command(conf, "-t"), capture_output=True, text=True,
                          timeout=CHECK_TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


@pytest.fixture
def two_nodes(tmp_path: Path, postgresql_cluster: Cluster) -> Iterator[Fleet]:
    fleet = Fleet.create(tmp_path / "fleet", postgresql_cluster, size=2)
    try:
        fleet.start(proxy=False)
        yield fleet
    finally:
        fleet.stop()


def test_nginx_with_the_compose_configuration_serves_both_nodes(
        tmp_path: Path, two_nodes: Fleet, resolved: dict[str, Any]) -> None:
    """The real nginx with deploy/compose/nginx.conf in front of two real nodes on one
    PostgreSQL database: requests reach both; with one node stopped, every request is
    answered by the other."""
    (tmp_path / "nginx").mkdir()
    conf, tls_port = nginx_for_test(tmp_path / "nginx", two_nodes.ports)
    with (tmp_path / "nginx" / "stderr.log").open("wb") as sink:
        proc = subprocess.Popen(nginx.command(conf), stdout=sink, stderr=subprocess.STDOUT)
    try:
        _wait_tcp(tls_port, proc, tmp_path / "nginx" / "error.log")
        url = f"https://127.0.0.1:{tls_port}"
        before = [_requests_seen(two_nodes, i) for i in range(2)]
        statuses = asyncio.run(_get_many(f"{url}/readyz", 20))
        assert statuses == [200] * 20
        after = [_requests_seen(two_nodes, i) for i in range(2)]
        assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)
        # /metrics is kept off the public side, as in docs/deploy.md.
        assert asyncio.run(_get_many(f"{url}/metrics", 1)) == [404]
        # The compose's health check, run as the container would (its VIDEOASSIST_PORT).
        assert [_health_check(resolved, port) for port in two_nodes.ports] == [0, 0]
        two_nodes.node(0).stop(10)
        assert asyncio.run(_get_many(f"{url}/readyz", 10)) == [200] * 10
        assert _health_check(resolved, two_nodes.ports[0]) != 0
    finally:
        proc.terminate()
        proc.wait(10)


def _health_check(resolved: dict[str, Any], port: int) -> int:
    """The nodes' health check command's exit status against a node on ``port``."""
    [check] = {json.dumps(resolved["services"][name]["healthcheck"]["test"]) for name in NODES}
    kind, python, *args = json.loads(check)
    assert (kind, python) == ("CMD", "python")
    done = subprocess.run([sys.executable, *args], env=clean_env(VIDEOASSIST_PORT=str(port)),
                          capture_output=True, timeout=CHECK_TIMEOUT_S)
    return done.returncode


def _wait_tcp(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while True:
        assert proc.poll() is None, log.read_text() if log.exists() else ""
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, log.read_text() if log.exists() else ""
            time.sleep(0.05)


def _requests_seen(fleet: Fleet, index: int) -> int:
    """How many /readyz requests node ``index``'s access log shows."""
    return fleet.node(index).output.count("/readyz")


async def _get_many(url: str, count: int) -> list[int]:
    statuses = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http:
        for _ in range(count):
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=10)) as response:
                statuses.append(response.status)
    return statuses
