"""Ports for what the tests start (service processes, brokers, HTTP servers), picked outside the kernel's ephemeral
range and in a slice of their own per pytest-xdist worker. A port is picked some time before its process binds it;
in the ephemeral range any outgoing connection (to PostgreSQL, to the broker) could take it meanwhile, and two
workers picking from one range could pick the same one: then a test talks to the other worker's process."""

from __future__ import annotations

import os
import random
import socket

from ops.local_broker import LOOPBACK

LOWEST = 10_000
"""The slices start above the well-known and registered ports most often in use."""
_handed_out: set[int] = set()


def _ephemeral_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
            return int(ranges.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def worker_slice() -> range:
    """This worker's ports: ``[LOWEST, ephemeral start)`` cut into as many slices as there are workers."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    count = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")), index + 1)
    size = (_ephemeral_start() - LOWEST) // count
    return range(LOWEST + index * size, LOWEST + (index + 1) * size)


def free_port(host: str = LOOPBACK) -> int:
    """A port of this worker's slice that nothing listens on now and that this process has not handed out."""
    ports = worker_slice()
    for _ in range(2000):
        port = random.randrange(ports.start, ports.stop)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {ports} after 2000 tries")
