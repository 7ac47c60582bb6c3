"""The distribution installs one import package, ``asyncq``, and the library does not load the CLIs' libraries."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(180)
def test_the_wheel_holds_only_the_asyncq_package(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("asyncq-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"asyncq"}, sorted(tops)
    for part in ("asyncq/__init__.py", "asyncq/producer/cli.py", "asyncq/consumer/cli.py", "asyncq/cli/admin.py"):
        assert part in names, part
    assert any(name.startswith("asyncq/core/lua/") and name.endswith(".lua") for name in names)
    # asyncq web serves its page, script and style from the package: no CDN, nothing fetched at run time.
    for asset in ("page.html", "app.js", "app.css"):
        assert f"asyncq/web/static/{asset}" in names, asset
    assert "asyncq/tracing.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    expected = (
        "producer = asyncq.producer.cli:app",
        "consumer = asyncq.consumer.cli:app",
        "asyncq = asyncq.cli.admin:app",
    )
    for line in expected:
        assert line in scripts, scripts


def test_import_asyncq_loads_neither_typer_nor_rich() -> None:
    probe = "import sys, asyncq; print(sorted(m for m in ('typer', 'rich', 'click') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


def test_python_m_runs_the_clis() -> None:
    for module in ("asyncq.producer", "asyncq.consumer"):
        done = subprocess.run(
            [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0 and "Usage" in done.stdout, done.stderr
