"""Real networks on one Linux host: network namespaces joined by veth pairs (iproute2, root only).

Two layouts for a call's processes (``receiver.demo.Layout``):

* ``shaped_link``: the sender's and the receiver's namespaces joined by one veth pair whose both ends are
  shaped by ``tbf`` (token bucket: ``rate``, a one-packet ``burst``, a queue of ``latency`` ms: a 2G-like
  link with a small buffer). The signaling server runs beside the receiver, so signaling crosses the link too.
* ``relayed``: the sender and the receiver each joined only to a relay namespace, which does not forward
  between them; a TURN server (coturn's ``turnserver``) runs there, with the signaling server. The peers can
  reach the relay but not each other (checked when the layout is made), so ICE must choose relayed candidates.

Namespaces are named after this process (``kpc<pid>...``) and removed on exit, taking their links with them.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from receiver.demo import Layout, Site

TURN_USER, TURN_PASSWORD, TURN_PORT = "kpc", "relay-test-secret", 3478
#: Prints "reached" when a TCP connection to ``host`` is answered (even refused), "unreachable" otherwise.
_PROBE = ("import socket\ntry:\n    socket.create_connection(('{host}', 9), timeout=1)\n"
          "except ConnectionRefusedError:\n    print('reached')\nexcept OSError:\n    print('unreachable')\n"
          "else:\n    print('reached')")


def unavailable() -> str | None:
    """Why network namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "iproute2 (ip, tc) is not installed"
    probe = f"kpc{os.getpid()}probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass(frozen=True)
class Namespace:
    name: str

    @property
    def prefix(self) -> tuple[str, ...]:
        """The command prefix that runs a program inside this namespace."""
        return ("ip", "netns", "exec", self.name)

    def run(self, *cmd: str) -> str:
        done = subprocess.run([*self.prefix, *cmd], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} in {self.name}: {done.stderr.strip()}")
        return done.stdout


class Namespaces:
    """Namespaces and veth links made for one run (a context manager: all removed on exit)."""

    def __init__(self) -> None:
        self.made: list[Namespace] = []

    def add(self, role: str) -> Namespace:
        ns = Namespace(f"kpc{os.getpid()}{role}")
        _ip("netns", "add", ns.name)
        self.made.append(ns)
        ns.run("ip", "link", "set", "lo", "up")
        return ns

    def link(self, a: Namespace, a_ip: str, b: Namespace, b_ip: str) -> tuple[str, str]:
        """A veth pair between ``a`` and ``b`` with /24 addresses; the two interface names."""
        ends = (f"v{len(self.made)}{a.name[-1]}{b.name[-1]}a", f"v{len(self.made)}{a.name[-1]}{b.name[-1]}b")
        _ip("link", "add", ends[0], "netns", a.name, "type", "veth", "peer", "name", ends[1], "netns", b.name)
        for ns, dev, ip in ((a, ends[0], a_ip), (b, ends[1], b_ip)):
            ns.run("ip", "addr", "add", f"{ip}/24", "dev", dev)
            ns.run("ip", "link", "set", dev, "up")
        return ends

    def __enter__(self) -> Namespaces:
        return self

    def __exit__(self, *exc: object) -> None:
        for ns in self.made:
            subprocess.run(["ip", "netns", "del", ns.name], capture_output=True)


def shape(ns: Namespace, dev: str, rate_kbit: float, latency_ms: float) -> None:
    """Token-bucket shaping of what ``dev`` sends: ``rate_kbit``, a burst of one full packet, a queue of
    ``latency_ms`` (packets that would wait longer are dropped)."""
    ns.run("tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", f"{rate_kbit}kbit", "burst", "1600",
           "latency", f"{latency_ms}ms")


def qdisc_counts(ns: Namespace, dev: str) -> dict[str, int]:
    """Bytes and packets a shaped interface sent, and the packets its queue dropped (from ``tc -s``)."""
    words = ns.run("tc", "-s", "qdisc", "show", "dev", dev).split()
    sent = words.index("Sent")
    return {"sent_bytes": int(words[sent + 1]), "sent_packets": int(words[sent + 3]),
            "dropped": int(words[words.index("(dropped") + 1].rstrip(","))}


@dataclass(frozen=True)
class ShapedLink:
    layout: Layout
    sender: Namespace
    receiver: Namespace
    devices: tuple[str, str]  # the sender's end, the receiver's end

    def counts(self) -> dict[str, dict[str, int]]:
        return {"sender_to_receiver": qdisc_counts(self.sender, self.devices[0]),
                "receiver_to_sender": qdisc_counts(self.receiver, self.devices[1])}


@contextlib.contextmanager
def shaped_link(rate_kbit: float, latency_ms: float = 300.0) -> Iterator[ShapedLink]:
    """Sender and receiver on the two ends of a ``rate_kbit`` link (both directions shaped)."""
    with Namespaces() as spaces:
        sender, receiver = spaces.add("s"), spaces.add("r")
        devices = spaces.link(sender, "10.16.0.1", receiver, "10.16.0.2")
        shape(sender, devices[0], rate_kbit, latency_ms)
        shape(receiver, devices[1], rate_kbit, latency_ms)
        on_receiver = Site(receiver.prefix, "10.16.0.2")
        yield ShapedLink(Layout(signaling=on_receiver, receiver=on_receiver, sender=Site(sender.prefix, "10.16.0.2")),
                         sender, receiver, devices)


@dataclass(frozen=True)
class Relayed:
    layout: Layout
    turn_log: Path


def _turn_args(relay_ip: str) -> tuple[str, ...]:
    return ("--turn", f"turn:{relay_ip}:{TURN_PORT}", "--turn-user", TURN_USER, "--turn-password", TURN_PASSWORD)


@contextlib.contextmanager
def relayed(folder: Path) -> Iterator[Relayed]:
    """Sender and receiver that can reach only the relay namespace, where coturn runs (log in ``folder``)."""
    turnserver = shutil.which("turnserver")
    if turnserver is None:
        raise RuntimeError("coturn's turnserver is not installed (apt-get install coturn)")
    with Namespaces() as spaces:
        sender, receiver, relay = spaces.add("s"), spaces.add("r"), spaces.add("t")
        spaces.link(sender, "10.17.1.2", relay, "10.17.1.1")
        spaces.link(receiver, "10.17.2.2", relay, "10.17.2.1")
        sender.run("ip", "route", "add", "default", "via", "10.17.1.1")
        receiver.run("ip", "route", "add", "default", "via", "10.17.2.1")
        relay.run("sysctl", "-q", "-w", "net.ipv4.ip_forward=0")  # the peers reach the relay, not each other
        if "unreachable" not in sender.run("python3", "-c", _PROBE.format(host="10.17.2.2")):
            raise RuntimeError("the relay layout is broken: the sender reaches the receiver's network")
        log = folder / "turnserver.log"
        turn = subprocess.Popen(
            [*relay.prefix, turnserver, "-n", "--no-cli", "--no-tls", "--no-dtls", "--fingerprint", "--lt-cred-mech",
             "--user", f"{TURN_USER}:{TURN_PASSWORD}", "--realm", "kpc.test", "--listening-port", str(TURN_PORT),
             "--listening-ip", "10.17.1.1", "--listening-ip", "10.17.2.1", "--relay-ip", "10.17.1.1",
             "--min-port", "49152", "--max-port", "49999", "--log-file", "stdout", "--simple-log",
             "--pidfile", str(folder / "turnserver.pid"), "--db", str(folder / "turndb")],
            stdout=log.open("w"), stderr=subprocess.STDOUT)
        try:
            _wait_for(log, "Total General servers", turn, "turnserver")  # its listeners are up
            yield Relayed(Layout(signaling=Site(relay.prefix, "0.0.0.0"),
                                 receiver=Site(receiver.prefix, "10.17.2.1", _turn_args("10.17.2.1")),
                                 sender=Site(sender.prefix, "10.17.1.1", _turn_args("10.17.1.1"))), log)
        finally:
            turn.terminate()
            turn.wait(10)


def _wait_for(log: Path, text: str, proc: subprocess.Popen, name: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start: see {log}")
        time.sleep(0.1)
