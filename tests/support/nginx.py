"""nginx on loopback running docs/deploy.md's site, as the deploy test, the fleet
harness and the relay benchmark's several nodes run it.

The ``nginx`` block of docs/deploy.md is taken as written; only what a run on one
machine must change is replaced, each replacement checked to apply: the listening
addresses (127.0.0.1 and ports of the run's own; the IPv6 ones dropped, IPv6 may be
off), the certificate, the access log, and the ``upstream`` servers. In front of one
port the site's own upstream line is pointed at it; in front of several, the Fleet
section's ``nginx fleet`` block stands in for the site's upstream, one ``server`` line
per port with the parameters the doc gives its nodes. nginx runs in the foreground,
one process, in a directory of the run's own (``write_conf``, ``command``).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tests.support.docs import fenced_blocks

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SITE_UPSTREAM = "server 127.0.0.1:8080;"  # the one-machine site's upstream server


class SiteError(ValueError):
    """docs/deploy.md's nginx blocks no longer read as this module expects."""


def _block(info: str) -> str:
    blocks = [b.body for b in fenced_blocks("deploy.md") if b.info == info]
    if len(blocks) != 1:
        raise SiteError(f"docs/deploy.md has {len(blocks)} {info!r} blocks, not one")
    return blocks[0]


def fleet_upstream(ports: list[int]) -> str:
    """The Fleet section's ``upstream`` block with one server per loopback port, each
    with the parameters the doc gives every node."""
    block = _block("nginx fleet")
    servers = re.findall(r"^\s*server \S+(?: ([^;]*))?;$", block, flags=re.M)
    if not servers or len(set(servers)) != 1:
        raise SiteError("docs/deploy.md's nginx fleet block has no servers, or servers "
                        "with different parameters")
    params = f" {servers[0]}" if servers[0] else ""
    lines = "\n".join(f"    server 127.0.0.1:{port}{params};" for port in ports)
    text, count = re.subn(r"^\s*server \S+.*;\n(?:^\s*server \S+.*;\n)*", lines + "\n",
                          block, count=1, flags=re.M)
    upstream = re.search(r"^upstream videoassist \{.*?^\}", text, flags=re.M | re.S)
    if count != 1 or upstream is None:
        raise SiteError("docs/deploy.md's nginx fleet block has no upstream videoassist")
    return upstream.group(0)


def site(ports: list[int], tls_port: int, http_port: int, cert: Path, key: Path,
         log: Path) -> str:
    """docs/deploy.md's nginx site on 127.0.0.1, in front of servers on these ports."""
    text = _block("nginx")
    if len(ports) == 1:
        replacements = [(SITE_UPSTREAM, f"server 127.0.0.1:{ports[0]};")]
    else:
        text, count = re.subn(r"^upstream videoassist \{.*?^\}",
                              lambda _: fleet_upstream(ports), text, flags=re.M | re.S)
        if count != 1:
            raise SiteError("docs/deploy.md's nginx block has no upstream videoassist")
        replacements = []
    return replace_once(text, [
        *replacements,
        *listen_on_loopback(tls_port, http_port),
        ("/etc/letsencrypt/live/assist.example.com/fullchain.pem", str(cert)),
        ("/etc/letsencrypt/live/assist.example.com/privkey.pem", str(key)),
        ("/var/log/nginx/videoassist.access.log", str(log)),
    ], "docs/deploy.md's nginx block")


def listen_on_loopback(tls_port: int, http_port: int) -> list[tuple[str, str]]:
    """The replacements that put a site's listeners (as deploy.md writes them) on
    127.0.0.1 and these ports; the IPv6 ones dropped (IPv6 may be off)."""
    return [("listen 443 ssl http2;", f"listen 127.0.0.1:{tls_port} ssl http2;"),
            ("listen 80;", f"listen 127.0.0.1:{http_port};"),
            ("    listen [::]:443 ssl http2;\n", ""),
            ("    listen [::]:80;\n", "")]


def replace_once(text: str, replacements: list[tuple[str, str]], where: str) -> str:
    """``text`` with each replacement made; each must find its text exactly once."""
    for old, new in replacements:
        if text.count(old) != 1:
            raise SiteError(f"{where} has no {old.strip()!r} (once)")
        text = text.replace(old, new)
    return text


def write_conf(directory: Path, site_text: str, *, error_log: Path, level: str = "info",
               worker_connections: int = 256) -> Path:
    """An nginx.conf in ``directory`` (its pid file and temporary paths there too) that
    serves ``site_text`` from one process in the foreground; its path."""
    temp = "\n".join(f"    {kind}_temp_path {directory / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = directory / "nginx.conf"
    conf.write_text(f"""daemon off;
master_process off;
worker_processes 1;
pid {directory / 'nginx.pid'};
error_log {error_log} {level};
events {{ worker_connections {worker_connections}; }}
http {{
{temp}
{site_text}
}}
""")
    return conf


def command(conf: Path, *args: str) -> list[str]:
    """The command that runs nginx on ``conf``, its prefix and startup log beside it."""
    return [NGINX, "-c", str(conf), "-p", str(conf.parent), "-e",
            str(conf.parent / "e.log"), *args]
