"""A real impaired network for media tests: a network namespace of its own, joined to
this machine by veth pairs, shaped with ``tc tbf``, made lossy with nftables, cut by
taking an interface down. No mock: the packets cross the kernel's links, queues and
filters.

Layout (``Netns``)::

      this machine                                       namespace va-PID-N
    +------------------------------------+          +-------------------------------+
    | a server bound to 10.213.K.1       |          | a client: an event loop in a  |
    | (HTTP and media), other clients    |          | thread that entered it        |
    |                                    |          | (``Inside``)                  |
    |  vaPIDxNr 10.213.K.1/24 ===========|== veth ==|== vaPIDxNc 10.213.K.2/24      |
    |  vaPIDyNr 10.213.M.1/24 ===========|== veth ==|== vaPIDyNc 10.213.M.2/24      |
    |                                    |          |   (the second pair, up from   |
    |                                    |          |    ``move_client`` on)        |
    +------------------------------------+          +-------------------------------+

Addresses are taken from 10.213.0.0/16 (``SUBNETS``), one /24 per veth pair: the root
end is .1, the namespace end .2. Nothing else on these machines uses that range; a
/24 is picked under a file lock among those no interface holds, so that several test
processes (and several tests of one) each get their own. The namespace's only route is
its default route through its current pair's root end: everything it sends reaches
this machine and nothing further (this machine does not forward: ``ip_forward`` 0).

What each operation does, and in which direction:

- ``rate(kbit)``: a token bucket (``tc qdisc ... tbf``) on the egress of the namespace's
  end (the client's upload) and of the root end (its download), or one of them
  (``direction``). A full bucket queues up to ``latency_ms``, then drops.
- ``loss(percent)``: an nftables table inside the namespace (never this machine's own
  ruleset) that drops that share of every packet at random (``numgen random``), on
  the way out (``output``), in (``input``) or both. Delay is not offered: this kernel
  has no ``netem`` qdisc, and a queueing delay comes only from a full ``tbf``.
- ``cut()`` / ``restore()``: the namespace's end goes down (its routes with it; the root
  end loses its carrier, so this machine's packets to it are dropped at the pair, never
  routed elsewhere), then up again with its default route.
- ``move_client()``: the client changes address: the current pair's namespace end
  loses its address and goes down, the next pair (another /24) comes up and takes
  the default route. Sockets bound to the old address are dead, as a phone's are
  when it leaves Wi-Fi.

``Inside`` runs an asyncio event loop in a thread that entered the namespace
(``setns``, through libc: Python 3.11 has no ``os.setns``; only that thread moves, and
the threads it starts, aiortc's decoders, follow it): the sockets that loop creates
(aiohttp's, aioice's) live in the namespace, while the objects stay in this process
for the test to read. Its coroutines are run
from the test's loop with ``await inside.run(coro)``.

Other tests' calls stay off these links: a server and its peers on this machine see a
veth's root end as one more address of the machine, and ICE may pick a pair on it
that dies when the namespace goes, with the call's media. ``isolate_gathering`` (from
tests/conftest.py) keeps this process's peers and servers from gathering there unless
the namespace is one of its own still open (``OWN_ADDRESSES``); ``serve`` processes
bind their media sockets to the machine's other addresses and every test server
refuses candidates there (``tests.support.server.local_peers``). A namespace's root
ends can outlive ``close`` by many seconds (the kernel removes its devices once the
last socket made in it is closed), which is why those defences do not depend on when
another test's namespace goes.

Needs root, ``ip`` and ``tc`` (iproute2) and, for ``loss``, ``nft`` (Debian's
``nftables``, which scripts/test installs). ``unavailable()`` says why not.
Every command's stderr is in the ``CommandError`` it raises. Namespaces left by a
test process that died are removed by the next ``Netns`` (``clean_leftovers``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import fcntl
import ipaddress
import itertools
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import aioice.ice

T = TypeVar("T")

SUBNETS = "10.213.0.0/16"
_PREFIX = "10.213"
_LOCK = "/run/lock/videoassist-netns.lock"
_NAME = re.compile(r"^va-(\d+)-(\d+)$")
_STRAY = re.compile(r"^\d+: (va(\d+)s\d+r)@", re.MULTILINE)
_counter = itertools.count(1)  # namespaces made by this process, for unique names
CLONE_NEWNET = 0x40000000
# The letter in each pair's interface names: a namespace has at most this many pairs
# (``move_client`` adds one each time).
PAIR_LETTERS = "xyzwabcdefghijklmnopqrstuv"
COMMAND_S = 10.0  # no ip, tc or nft command takes near this; a guard against a hang
TEST_NETWORK = ipaddress.ip_network(SUBNETS)
# The addresses, root and namespace ends, of the namespaces this process has open:
# the only ones of SUBNETS its peers and servers may gather on (``isolate_gathering``).
OWN_ADDRESSES: set[str] = set()


class CommandError(RuntimeError):
    """A command of the harness failed; its stderr is in the message."""


def run(*args: str, stdin: str | None = None) -> str:
    """Run one command to completion; its stdout. Fails with its stderr."""
    try:
        proc = subprocess.run(args, input=stdin, capture_output=True, text=True,
                              timeout=COMMAND_S)
    except subprocess.TimeoutExpired as exc:
        raise CommandError(f"{' '.join(args)}: no answer within {COMMAND_S} s") from exc
    if proc.returncode != 0:
        raise CommandError(f"{' '.join(args)} exited {proc.returncode}: "
                           f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def unavailable(loss: bool = False) -> str | None:
    """Why this machine cannot make such networks (None: it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "tc", *(("nft",) if loss else ())):
        if shutil.which(tool) is None:
            return f"no {tool} command (scripts/test installs iproute2 and nftables)"
    return None


def clean_leftovers() -> list[str]:
    """Delete the namespaces (and their veth pairs with them) and the ``stray_veth``
    pairs of test processes that are gone; the names deleted."""
    deleted = []
    for line in run("ip", "netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        match = _NAME.match(name)
        if match is None or _alive(int(match.group(1))):
            continue
        with contextlib.suppress(CommandError):  # another process's cleaner was first
            run("ip", "netns", "delete", name)
            deleted.append(name)
    for match in _STRAY.finditer(run("ip", "-o", "link", "show")):
        if not _alive(int(match.group(2))):
            with contextlib.suppress(CommandError):
                run("ip", "link", "delete", match.group(1))
                deleted.append(match.group(1))
    return deleted


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Link:
    """One veth pair: ``root`` on this machine, ``inner`` in the namespace."""

    root: str
    inner: str
    root_address: str
    inner_address: str


class Netns:
    """A namespace with one veth pair up (and its default route through it), deleted
    with everything in it on exit, whatever happened."""

    def __init__(self) -> None:
        self.name = f"va-{os.getpid()}-{next(_counter)}"
        self.links: list[Link] = []
        self.current = 0  # the index in ``links`` of the pair the client uses
        self._made = False

    @property
    def link(self) -> Link:
        return self.links[self.current]

    @property
    def server_address(self) -> str:
        """This machine's end of the first pair: where a server the client reaches
        listens (reachable after ``move_client`` too: it is this machine's address)."""
        return self.links[0].root_address

    @property
    def client_address(self) -> str:
        return self.link.inner_address

    def __enter__(self) -> Netns:
        clean_leftovers()
        run("ip", "netns", "add", self.name)
        self._made = True
        try:
            self._ip("link", "set", "lo", "up")
            self._add_link()
            self._up(self.links[0])
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Delete the namespace: its veth ends go with it, and their peers here (once
        nothing holds it: a socket made in it and not closed yet keeps them a while)."""
        if self._made:
            self._made = False
            run("ip", "netns", "delete", self.name)
        for link in self.links:
            OWN_ADDRESSES.difference_update((link.root_address, link.inner_address))

    def _ip(self, *args: str) -> str:
        return run("ip", "-n", self.name, *args)

    def _add_link(self) -> Link:
        """A new veth pair on a /24 no interface of this machine has, its namespace end
        moved in, both ends up but the namespace's only if it is the first."""
        tag = f"va{os.getpid()}{PAIR_LETTERS[len(self.links)]}{self.name.rsplit('-', 1)[1]}"
        root, inner = f"{tag}r", f"{tag}c"
        with open(_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            octet = _free_octet()
            link = Link(root, inner, f"{_PREFIX}.{octet}.1", f"{_PREFIX}.{octet}.2")
            OWN_ADDRESSES.update((link.root_address, link.inner_address))
            run("ip", "link", "add", root, "type", "veth", "peer", "name", inner,
                "netns", self.name)
            run("ip", "link", "set", root, "addrgenmode", "none")  # no IPv6 link-local
            run("ip", "addr", "add", f"{link.root_address}/24", "dev", root)
        self.links.append(link)
        self._ip("link", "set", inner, "addrgenmode", "none")
        self._ip("addr", "add", f"{link.inner_address}/24", "dev", inner)
        run("ip", "link", "set", root, "up")
        return link

    def _up(self, link: Link) -> None:
        self._ip("link", "set", link.inner, "up")
        self._ip("route", "replace", "default", "via", link.root_address)

    # -- impairments ----------------------------------------------------------------

    def rate(self, kbit: int, *, direction: str = "both", latency_ms: int = 100) -> None:
        """Limit the client's link to ``kbit`` kbit/s: ``up`` (what the namespace
        sends), ``down`` (what it receives) or ``both``; replaces an earlier limit. The
        bucket holds 10 ms of the rate (at least one full packet)."""
        burst = max(1600, kbit * 1000 // 8 // 100)
        for side in self._sides(direction):
            self._tc(side, "qdisc", "replace", "dev", "DEV", "root", "tbf", "rate",
                     f"{kbit}kbit", "burst", str(burst), "latency", f"{latency_ms}ms")

    def unlimited(self, *, direction: str = "both") -> None:
        """Remove ``rate``'s limit."""
        for side in self._sides(direction):
            with contextlib.suppress(CommandError):  # there was none
                self._tc(side, "qdisc", "del", "dev", "DEV", "root")

    @staticmethod
    def _sides(direction: str) -> list[str]:
        assert direction in ("up", "down", "both"), direction
        return [d for d in ("up", "down") if direction in (d, "both")]

    def _tc(self, side: str, *args: str) -> str:
        """``tc`` on the egress of the namespace's end (``up``) or of the root end."""
        if side == "up":
            return run("ip", "netns", "exec", self.name, "tc",
                       *[self.link.inner if a == "DEV" else a for a in args])
        return run("tc", *[self.link.root if a == "DEV" else a for a in args])

    def loss(self, percent: int, *, direction: str = "both", on_link: bool = False) -> None:
        """Drop ``percent`` % of the packets at random, whatever they carry (UDP and
        TCP: a bad line drops both), ``up``, ``down`` or ``both``; replaces an earlier
        loss. 0 removes it.

        By default the upload's packets are dropped in the ``output`` hook: the sender's
        own ``send`` fails (EPERM), which a sender sees, unlike a loss on the way.
        ``on_link``: dropped at the namespace's end of the pair instead (the ``netdev``
        family's ``egress`` hook, past the sockets: UDP's ``send`` succeeds, TCP sees
        its segment not sent, as a full queue), as a lossy radio link would."""
        assert 0 <= percent <= 100
        self.no_loss()
        if percent == 0:
            return
        hooks = {"up": "output", "down": "input"}
        sides = self._sides(direction)
        chains = [f"chain {side} {{ type filter hook {hooks[side]} priority 0; "
                  f"policy accept; numgen random mod 100 < {percent} counter drop; }}"
                  for side in sides if not (on_link and side == "up")]
        tables = f"table inet impair {{\n{chr(10).join(chains)}\n}}\n"
        if on_link and "up" in sides:
            tables += (f"table netdev impair {{\nchain up {{ type filter hook egress device "
                       f"{self.link.inner} priority 0; policy accept; numgen random mod 100 "
                       f"< {percent} counter drop; }}\n}}\n")
        run("ip", "netns", "exec", self.name, "nft", "-f", "-", stdin=tables)

    def no_loss(self) -> None:
        for family in ("inet", "netdev"):
            with contextlib.suppress(CommandError):  # there was none
                run("ip", "netns", "exec", self.name, "nft", "delete", "table", family,
                    "impair")

    def dropped(self) -> int:
        """Packets ``loss`` dropped since it was last set."""
        total = 0
        for family in ("inet", "netdev"):
            try:
                rules = run("ip", "netns", "exec", self.name, "nft", "list", "table", family,
                            "impair")
            except CommandError:
                continue
            total += sum(int(n) for n in re.findall(r"counter packets (\d+)", rules))
        return total

    def cut(self) -> None:
        """The client's link goes dead: its interface down."""
        self._ip("link", "set", self.link.inner, "down")

    def restore(self) -> None:
        self._up(self.link)

    def move_client(self) -> Link:
        """The client leaves its address for another (a new pair, a new /24)."""
        old = self.link
        new = self._add_link()
        self._ip("addr", "flush", "dev", old.inner)
        self._ip("link", "set", old.inner, "down")
        self.current = len(self.links) - 1
        self._up(new)
        return new

    def inside(self) -> Inside:
        """An event loop whose sockets are in this namespace (``with`` it)."""
        return Inside(self.name)


def _free_octet() -> int:
    """The third octet of a /24 of SUBNETS no interface holds (under ``_LOCK``)."""
    used = set(re.findall(rf"inet {_PREFIX}\.(\d+)\.", run("ip", "-4", "-o", "addr")))
    return next(k for k in range(1, 255) if str(k) not in used)


@contextlib.contextmanager
def stray_veth() -> Iterator[str]:
    """A veth pair on this machine with an address of SUBNETS (yielded) that is none of
    this process's namespaces: how another test's namespace looks from here. Deleted
    on exit (and by ``clean_leftovers`` if this process dies first)."""
    name = f"va{os.getpid()}s{next(_counter)}"
    with open(_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        address = f"{_PREFIX}.{_free_octet()}.1"
        run("ip", "link", "add", f"{name}r", "type", "veth", "peer", "name", f"{name}c")
        try:
            run("ip", "link", "set", f"{name}r", "addrgenmode", "none")
            run("ip", "addr", "add", f"{address}/24", "dev", f"{name}r")
            run("ip", "link", "set", f"{name}r", "up")
            run("ip", "link", "set", f"{name}c", "up")
        except BaseException:
            run("ip", "link", "delete", f"{name}r")
            raise
    try:
        yield address
    finally:
        run("ip", "link", "delete", f"{name}r")


def enter(name: str) -> None:
    """Move the calling thread (only it) into namespace ``name``."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        setns = getattr(os, "setns", None)  # Python 3.12
        if setns is not None:
            setns(fd, CLONE_NEWNET)
            return
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into {name}: {os.strerror(errno)}")
    finally:
        os.close(fd)


class Inside:
    """An event loop in a thread of its own, in a namespace; ``run`` a coroutine there
    from any other loop. Stopped on exit, after the coroutines given to ``finally_run``
    (closing what was made there)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._main, name=f"netns {name}", daemon=True)

    def _main(self) -> None:
        try:
            enter(self.name)
        except BaseException as exc:
            self._ready.set_exception(exc)
            self.loop.close()
            return
        asyncio.set_event_loop(self.loop)
        self._ready.set_result(None)
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()

    def __enter__(self) -> Inside:
        self._thread.start()
        self._ready.result(COMMAND_S)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.loop.is_closed():
            return
        pending = asyncio.run_coroutine_threadsafe(self._cancel_all(), self.loop)
        with contextlib.suppress(Exception):
            pending.result(COMMAND_S)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(COMMAND_S)

    async def _cancel_all(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` in the namespace's loop; its result, or its exception."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))


def isolate_gathering() -> None:
    """Have aioice, in this process, gather host candidates on no address of SUBNETS
    but those of this process's open namespaces (see the module's docstring). aioice
    lists the machine's addresses with ``aioice.ice.get_host_addresses`` each time a
    connection gathers; this wraps it. In a namespace's thread that is its own end."""
    original = aioice.ice.get_host_addresses
    if getattr(original, "isolated", False):
        return

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [address for address in original(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
                if ipaddress.ip_address(address) not in TEST_NETWORK
                or address in OWN_ADDRESSES]

    get_host_addresses.isolated = True  # type: ignore[attr-defined]
    aioice.ice.get_host_addresses = get_host_addresses
