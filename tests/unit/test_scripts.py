"""How each Lua script is assembled for Redis: shebang and flags, the F table, the library functions it uses."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from asyncq.core.keys import TOTALS
from asyncq.core.scripts import source, with_dependencies

LUA = resources.files("asyncq.core") / "lua"
SCRIPTS = sorted(p.name.removesuffix(".lua") for p in LUA.iterdir() if p.name.endswith(".lua") and p.name != "lib.lua")
LIBRARY = re.findall(r"^local function (\w+)\(", (LUA / "lib.lua").read_text(), re.MULTILINE)
LIB_PARTS = dict(re.findall(r"^--- (\w+)\n(?:--.*\n)*local function (\w+)\(", (LUA / "lib.lua").read_text(), re.M))


def _header(text: str, field: str) -> list[str]:
    found = re.search(rf"^-- {field}: (.*)$", text, re.MULTILINE)
    return found.group(1).replace(",", " ").split() if found else []


def test_every_script_is_found_and_every_library_function_is_in_a_part() -> None:
    assert {"put", "fetch", "ack", "retry", "dead", "recover", "release", "requeue", "heartbeat", "lock"} <= set(
        SCRIPTS
    )
    assert LIBRARY and sorted(LIB_PARTS.values()) == sorted(LIBRARY), "every function of lib.lua in a --- part"


@pytest.mark.parametrize("name", SCRIPTS)
def test_the_shebang_carries_the_scripts_flags(name: str) -> None:
    text = source(name)
    body = (LUA / f"{name}.lua").read_text()
    first = text.splitlines()[0]
    flags = _header(body, "flags")
    assert first == ("#!lua flags=" + ",".join(flags) if flags else "#!lua")
    if name == "put":
        assert "allow-oom" not in first  # a PUT on a server at maxmemory is refused whole
    else:
        assert "allow-oom" in first.split("flags=")[-1].split(","), "consuming must work at maxmemory"


@pytest.mark.parametrize("name", SCRIPTS)
def test_the_counter_names_come_from_python(name: str) -> None:
    second = source(name).splitlines()[1]
    assert second == "local F = {" + ", ".join(f"{n} = '{n}'" for n in TOTALS) + "}"
    used = set(re.findall(r"\bF\.(\w+)", (LUA / f"{name}.lua").read_text()))
    assert used <= set(TOTALS), f"{name}.lua counts {used - set(TOTALS)}, which TOTALS does not name"


@pytest.mark.parametrize("name", SCRIPTS)
def test_only_the_library_functions_a_script_uses_are_copied_in(name: str) -> None:
    body = (LUA / f"{name}.lua").read_text()
    text = source(name)
    uses = _header(body, "uses")
    called = {fn for fn in LIBRARY if re.search(rf"\b{fn}\(", body)}
    named = {LIB_PARTS[part] for part in uses}
    assert called == named, f"{name}.lua calls {sorted(called)} but its uses: line names {uses}"
    functions = {LIB_PARTS[part] for part in with_dependencies(uses)}  # and what those call
    for fn in LIBRARY:
        defined = re.search(rf"^local function {fn}\(", text, re.MULTILINE) is not None
        assert defined == (fn in functions), f"{fn} {'copied into' if defined else 'missing from'} {name}"
    assert text.endswith(body)
