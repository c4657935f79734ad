"""constraints.txt (the lock) agrees with setup.cfg; the core needs none of the extras."""

from __future__ import annotations

import configparser
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def requirements(setup_cfg: Path) -> dict[str, list[Requirement]]:
    """``install_requires`` (as ``core``) and every extra of ``setup_cfg``."""
    cfg = configparser.ConfigParser()
    cfg.read(setup_cfg)

    def parse(text: str) -> list[Requirement]:
        lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
        return [Requirement(line) for line in lines if line]

    out = {"core": parse(cfg["options"]["install_requires"])}
    if cfg.has_section("options.extras_require"):
        out.update({name: parse(text) for name, text in cfg["options.extras_require"].items()})
    return out


def pins(constraints: Path) -> dict[str, Version]:
    """name -> pinned version of a constraints file; anything but ``name==version`` fails."""
    out: dict[str, Version] = {}
    for number, raw in enumerate(constraints.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and name and version, f"{constraints.name}:{number}: {raw!r} is not a pin"
        key = canonicalize_name(name)
        assert key not in out, f"{constraints.name}:{number}: {name} is pinned twice"
        out[key] = Version(version)
    return out


def disagreements(setup_cfg: Path, constraints: Path) -> list[str]:
    """Every requirement of ``setup_cfg`` missing from ``constraints`` or pinned outside its range."""
    pinned = pins(constraints)
    problems = []
    for group, reqs in requirements(setup_cfg).items():
        for req in reqs:
            if req.marker is not None and not req.marker.evaluate():
                continue
            version = pinned.get(canonicalize_name(req.name))
            if version is None:
                problems.append(f"{req.name} ({group}) is not in {constraints.name}")
            elif not req.specifier.contains(version, prereleases=True):
                problems.append(f"{req.name} ({group}) wants {req.specifier}, "
                                f"{constraints.name} pins {version}")
    return problems


def test_the_lock_pins_every_requirement_of_every_extra_within_its_range():
    problems = disagreements(ROOT / "setup.cfg", ROOT / "constraints.txt")
    assert not problems, "run 'make lock': " + "; ".join(problems)


def test_the_library_keeps_ranges_not_exact_pins():
    exact = [f"{req} ({group})" for group, reqs in requirements(ROOT / "setup.cfg").items()
             for req in reqs if any(s.operator in ("==", "===") and "*" not in s.version
                                    for s in req.specifier)]
    assert not exact


def test_disagreements_are_found(tmp_path):
    cfg = tmp_path / "setup.cfg"
    cfg.write_text(textwrap.dedent("""\
        [options]
        install_requires =
            # a comment line
            sqlglot<30.18
            numpy>=1.26
            pywin32>=1; sys_platform == "win32"
        [options.extras_require]
        dev =
            pytest>=8
        lab =
            Plotly[express]>=6
        """))
    lock = tmp_path / "constraints.txt"
    lock.write_text("# header\nsqlglot==30.18.0\nnumpy==2.0.0\nplotly==7.1.0\n")
    assert disagreements(cfg, lock) == [
        "sqlglot (core) wants <30.18, constraints.txt pins 30.18.0",
        "pytest (dev) is not in constraints.txt"]
    lock.write_text("sqlglot==30.17.0\nnumpy==2.0.0\npytest==8.0\nplotly==7.1.0\n")
    assert disagreements(cfg, lock) == []
    lock.write_text("sqlglot>=30\n")
    with pytest.raises(AssertionError, match="is not a pin"):
        disagreements(cfg, lock)
    lock.write_text("plotly==7.1.0\nPlotly==7.1.0\n")
    with pytest.raises(AssertionError, match="pinned twice"):
        disagreements(cfg, lock)


def test_lock_script_reads_every_extra_from_setup_cfg():
    import importlib.util

    spec = importlib.util.spec_from_file_location("lakehouse_lock", ROOT / "scripts/lock.py")
    lock = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lock)
    extras = lock.extras(ROOT / "setup.cfg")
    assert extras == sorted(k for k in requirements(ROOT / "setup.cfg") if k != "core")
    assert {"dev", "lab", "mlflow", "spark"} <= set(extras)


# What left the core: only the extras (or scripts/) may use them.
NOT_CORE = ("jupyterlab", "jupyter_server", "IPython", "ipykernel", "ipywidgets", "plotly",
            "psutil", "mlflow", "pyspark", "nbclient", "nbformat", "pytest")


@pytest.mark.slow
def test_every_core_module_imports_without_the_extras():
    # A fresh interpreter where importing any extra's package fails, as on a cron VM
    # with a plain `pip install lakehouse`.
    code = textwrap.dedent(f"""
        import importlib, importlib.abc, pkgutil, sys
        BLOCKED = {NOT_CORE!r}
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{{name}} is not installed (blocked)")
        sys.meta_path.insert(0, Block())
        import lakehouse
        failed = []
        for mod in pkgutil.walk_packages(lakehouse.__path__, "lakehouse."):
            if mod.name == "lakehouse.__main__":  # runs the CLI
                continue
            try:
                importlib.import_module(mod.name)
            except ImportError as exc:
                failed.append(f"{{mod.name}}: {{exc}}")
        print("\\n".join(failed))
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    failed = [line for line in out.stdout.splitlines() if line.strip()]
    assert failed == []
