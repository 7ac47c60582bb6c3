"""docker-compose.ha.yml: Redis master + replica + 3 Sentinels, asyncq reaching the master through the Sentinels.

The offline tests validate the override with the venv's Compose binary (no engine). The ``docker`` test runs the HA
stack under a project name of its own, puts numbered (random, unique) items through the sentinel URL, stops or
kills the master's container mid-run and checks that every item was processed; it skips where no engine answers
and provisions nothing itself (``.ci/run`` runs ``scripts/provision-docker.sh``). Nothing is published on the host:
the test looks inside through ``docker compose exec`` and the containers' logs.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.harness import build_image, docker_available

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HA_FILES = ("docker-compose.yml", "docker-compose.ha.yml")
IMAGE = os.environ.get("ASYNCQ_TEST_IMAGE", "asyncq:pytest")
SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")
REDIS_SIDE = ("redis", "redis-replica", *SENTINELS)
# consumer -v: "Consumer <id> got element <label> in 0.00123 seconds."
# producer -v: "Producer 0 added <label> to queue."
GOT = re.compile(r"Consumer \S+ got element <(?P<item>[^>]*)> in [0-9.eE+-]+ seconds")
ADDED = re.compile(r"Producer \d+ added <(?P<item>[^>]*)> to queue")
PRODUCED = re.compile(r"produced (?P<count>\d+) items in .*; all processed after")


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without the settings compose would read from it, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ASYNCQ_", "REDIS_", "COMPOSE_", "SENTINEL_")) and k != "REDISCLI_AUTH"
    }
    return env | extra


def compose_config(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`docker-compose -f docker-compose.yml -f docker-compose.ha.yml ARGS` with the venv's Compose, no engine."""
    tool = shutil.which("docker-compose", path=str(BIN))
    if tool is None:
        pytest.fail(f"docker-compose is not in {BIN}: `make install` installs the test extras")
    paths = [arg for name in HA_FILES for arg in ("-f", str(ROOT / name))]
    return subprocess.run(
        [tool, *paths, "--env-file", str(ROOT / ".env.example"), *args],
        check=False,
        capture_output=True,
        text=True,
        env=clean_env(env),
        timeout=60,
    )


# --- offline: no engine needed ------------------------------------------------------------------


def test_ha_override_validates() -> None:
    done = compose_config("config", "-q", env={"REDIS_PASSWORD": "x"})
    assert done.returncode == 0, done.stderr
    done = compose_config("--profile", "watch", "config", "-q", env={"REDIS_PASSWORD": "x"})
    assert done.returncode == 0, done.stderr


def test_ha_override_refuses_to_start_without_a_password() -> None:
    done = compose_config("config", "-q", env={})
    assert done.returncode != 0
    assert "REDIS_PASSWORD" in done.stderr


def test_ha_override_shape() -> None:
    password = secrets.token_hex(8)
    done = compose_config("--profile", "watch", "config", "--format", "json", env={"REDIS_PASSWORD": password})
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    assert set(services) == {"redis", "redis-replica", *SENTINELS, "consumer", "producer", "watch"}

    url = f"redis+sentinel://:{password}@sentinel-1:26379,sentinel-2:26379,sentinel-3:26379/mymaster"
    for name in ("consumer", "producer", "watch"):
        service = services[name]
        assert service["environment"]["REDIS_URL"] == url, name
        assert {"redis", "redis-replica", *SENTINELS} <= set(service["depends_on"]), name
        assert all(d["condition"] == "service_healthy" for d in service["depends_on"].values()), name
    assert services["consumer"]["environment"]["ASYNCQ_CONCURRENCY"]  # the main file's settings are kept

    for name in REDIS_SIDE:
        service = services[name]
        assert service["image"] == "redis:7-bookworm", name
        assert service["user"] == "999:999", name  # never root
        # The password is only in the environment, never in a command or a healthcheck.
        assert password not in json.dumps(service["command"]) + json.dumps(service["healthcheck"]), name
        assert any(v["target"] == "/data" and v["type"] == "volume" for v in service["volumes"]), name
    for name in ("redis", "redis-replica"):
        command = " ".join(services[name]["command"])
        # Either node may be master: both require the password and both can authenticate to the other.
        assert "--requirepass" in command and "--masterauth" in command, name
        assert "--appendonly yes" in command and f"--replica-announce-ip {name}" in command, name
    assert "--replicaof redis 6379" in " ".join(services["redis-replica"]["command"])
    assert "--replicaof" not in " ".join(services["redis"]["command"])
    volumes = {v["source"] for name in SENTINELS for v in services[name]["volumes"]}
    assert len(volumes) == 3  # each Sentinel rewrites a config file of its own
    for name in SENTINELS:
        script = services[name]["command"][-1]
        assert "sentinel monitor mymaster redis 6379 2" in script
        assert "--sentinel" in script and "resolve-hostnames yes" in script
        assert services[name]["environment"]["SENTINEL_NAME"] == name
        assert "ckquorum" in " ".join(services[name]["healthcheck"]["test"])


# --- with an engine -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> None:
    ok, reason = docker_available()
    if not ok:
        if os.environ.get("ASYNCQ_REQUIRE_DOCKER") == "1":
            pytest.fail(f"ASYNCQ_REQUIRE_DOCKER=1 but {reason}")
        pytest.skip(reason)
    plugin = subprocess.run(["docker", "compose", "version"], check=False, capture_output=True, timeout=30)
    if plugin.returncode != 0:
        pytest.fail("`docker compose` (v2) is missing: run scripts/provision-docker.sh")


@pytest.fixture(scope="module")
def image(engine: None) -> str:
    """The asyncq image, built with the classic builder, from ./wheelhouse when it holds wheels."""
    build_image(IMAGE)
    return IMAGE


class HaStack:
    """The HA stack under a project name of its own."""

    def __init__(self, image: str, env_file: Path, settings: dict[str, str]) -> None:
        self.project = f"asyncq-pytest-ha-{uuid.uuid4().hex[:8]}"
        self.password = secrets.token_hex(16)
        self.env_file = env_file
        self.settings = {
            "REDIS_PASSWORD": self.password,
            "ASYNCQ_IMAGE": image,
            "ASYNCQ_QUEUE": "pytest-ha",
            **settings,
        }

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        files = [arg for name in HA_FILES for arg in ("-f", str(ROOT / name))]
        return subprocess.run(
            ["docker", "compose", "-p", self.project, *files, "--env-file", str(self.env_file), *args],
            check=False,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=clean_env(self.settings),
            timeout=timeout,
        )

    def check(self, *args: str, timeout: float = 300) -> str:
        done = self.compose(*args, timeout=timeout)
        assert done.returncode == 0, (
            f"docker compose {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}\n"
            f"{self.compose('ps', '-a').stdout}\n{self.compose('logs', '--no-color', '--tail', '50').stdout}"
        )
        return done.stdout

    def cli(self, service: str, *args: str) -> str:
        """redis-cli inside ``service`` (REDISCLI_AUTH is set in the data nodes; the Sentinels take no password)."""
        port = ["-p", "26379"] if service.startswith("sentinel") else []
        done = self.compose("exec", "-T", service, "redis-cli", *port, *args, timeout=30)
        return done.stdout if done.returncode == 0 else ""

    def masters_named(self) -> set[str]:
        """The master each Sentinel names, as host:port ('' for a Sentinel that does not answer)."""
        return {":".join(self.cli(s, "sentinel", "get-master-addr-by-name", "mymaster").split()) for s in SENTINELS}

    def sentinel_master(self, sentinel: str) -> dict[str, str]:
        lines = self.cli(sentinel, "sentinel", "master", "mymaster").splitlines()
        return dict(zip(lines[::2], lines[1::2], strict=False))

    def replication(self, service: str) -> dict[str, str]:
        text = self.cli(service, "info", "replication")
        return dict(line.strip().split(":", 1) for line in text.splitlines() if ":" in line)

    def consumer_lines(self) -> list[str]:
        return GOT.findall(self.check("logs", "--no-color", "consumer", timeout=60))

    def down(self) -> None:
        print(self.compose("ps", "-a").stdout)
        print(self.compose("logs", "--no-color", "--tail", "40").stdout)
        done = self.compose("down", "--volumes", "--remove-orphans", "--timeout", "30")
        print(done.stdout, done.stderr)


@pytest.fixture
def ha_stack(engine: None, tmp_path: Path) -> Iterator[Callable[..., HaStack]]:
    stacks: list[HaStack] = []
    env_file = tmp_path / "empty.env"  # a developer's .env must not change what the tests run
    env_file.write_text("")

    def make(**settings: str) -> HaStack:
        stack = HaStack(IMAGE, env_file, settings)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.down()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> float:
    """Poll until ``predicate()`` is truthy; the seconds it took."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)
    return time.monotonic() - started


def start_redis_side(stack: HaStack) -> None:
    """Master, replica and Sentinels up; every Sentinel names `redis` and knows the replica and the others."""
    took = time.monotonic()
    stack.check("up", "-d", "--wait", "--wait-timeout", "120", *REDIS_SIDE)

    def agreed() -> bool:
        if stack.masters_named() != {"redis:6379"}:
            return False
        infos = [stack.sentinel_master(s) for s in SENTINELS]
        return all(i.get("num-slaves") == "1" and i.get("num-other-sentinels") == "2" for i in infos)

    # Healthy (ckquorum) comes first; a Sentinel learns the replica from the master's INFO, up to 10 s later.
    wait_for(agreed, 60, "the three Sentinels to agree on redis:6379 with one replica")
    assert stack.replication("redis-replica").get("master_link_status") == "up"
    print(f"master, replica and 3 Sentinels agreed after {time.monotonic() - took:.1f} s")


@pytest.mark.docker
@pytest.mark.timeout(300)
def test_ha_stack_starts_and_sentinels_fail_over(ha_stack: Callable[..., HaStack]) -> None:
    """The Redis side alone (no asyncq): it starts, the Sentinels agree, and stopping the master's container
    promotes the replica; started again, the old master rejoins as a replica. Passes without Sentinel support in
    the library."""
    stack = ha_stack()
    start_redis_side(stack)
    stack.check("stop", "--timeout", "1", "redis")
    took = wait_for(lambda: stack.masters_named() == {"redis-replica:6379"}, 60, "a new master")
    print(f"Sentinels named redis-replica {took:.1f} s after `docker compose stop redis`")
    assert stack.replication("redis-replica").get("role") == "master"

    stack.check("start", "redis")
    took = wait_for(
        lambda: (r := stack.replication("redis")).get("role") == "slave" and r.get("master_link_status") == "up",
        90,
        "the old master to rejoin as a replica",
    )
    print(f"old master a linked replica {took:.1f} s after it started again")
    assert stack.replication("redis").get("master_host") == "redis-replica"
    assert stack.masters_named() == {"redis-replica:6379"}


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("fault", ["stop", "kill"])
def test_master_lost_mid_run_nothing_lost(image: str, ha_stack: Callable[..., HaStack], fault: str) -> None:
    """Needs Sentinel URLs in the library (issue 12). `docker compose stop` (SIGTERM: Redis waits for its replica
    before exiting) or `kill` (SIGKILL) of the master's container while a producer puts 600 items at 30/s through the
    sentinel URL: the producer finishes (its join() returns), and every item it added is processed."""
    count = 600
    stack = ha_stack(
        ASYNCQ_COUNT=str(count),
        ASYNCQ_RATE="30",
        ASYNCQ_SIZE="16",
        ASYNCQ_WORK="0.01-0.03",
        ASYNCQ_CONCURRENCY="5",
    )
    start_redis_side(stack)
    stack.check("up", "-d", "--wait", "--wait-timeout", "120", "--scale", "consumer=2", "consumer")

    with ThreadPoolExecutor(max_workers=1) as pool:
        producer = pool.submit(
            stack.compose, "run", "--rm", "-T", "--no-deps", "producer", "producer", "-v", "--wait", timeout=600
        )
        wait_for(lambda: len(stack.consumer_lines()) >= 150 or producer.done(), 120, "150 items processed")
        assert not producer.done(), "the producer ended before the fault: " + producer.result().stderr
        before = len(stack.consumer_lines())
        faulted = time.monotonic()
        stack.check(*(["stop", "--timeout", "10"] if fault == "stop" else ["kill"]), "redis")
        took = wait_for(lambda: stack.masters_named() == {"redis-replica:6379"}, 60, "a new master")
        print(f"{fault}: {before} items processed before; Sentinels named redis-replica after {took:.1f} s")
        done = producer.result(timeout=600)
    print(f"producer exited {time.monotonic() - faulted:.1f} s after the fault")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (m := PRODUCED.search(done.stdout + done.stderr)) and int(m["count"]) == count, done.stdout[-2000:]
    added = ADDED.findall(done.stdout)
    assert len(added) == count and len(set(added)) == count, f"{len(added)} added lines, {len(set(added))} distinct"

    wait_for(lambda: set(added) <= set(stack.consumer_lines()), 120, "every added item to be processed")
    processed = Counter(stack.consumer_lines())
    lost = set(added) - set(processed)
    assert not lost, f"{len(lost)} items lost: {sorted(lost)[:10]}"
    again = sum(n - 1 for n in processed.values() if n > 1)
    print(f"all {count} items processed; {again} processed again after the failover (at least once)")
    assert set(processed) == set(added), "processed items nobody added"

    snap = json.loads(stack.check("exec", "-T", "consumer", "asyncq", "stats", "--json"))
    assert snap["depth"] == 0 and not snap["unfinished"], snap
