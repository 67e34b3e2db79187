"""pyproject.toml and environment.yml name the same dependencies with the same lower bounds; the
quick-start and CI scripts call what the README says."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    from pip._vendor import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
REQ = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:\[[^\]]*\])?\s*((?:[<>=!~]=?|==)\s*[^;,\s]+)?")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _parse(spec: str) -> tuple[str, str]:
    m = REQ.match(spec)
    assert m, spec
    return _norm(m.group(1)), (m.group(2) or "").replace(" ", "")


def pyproject_deps() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    specs = list(data["project"]["dependencies"])
    for extra in data["project"].get("optional-dependencies", {}).values():
        specs += extra
    return dict(_parse(s) for s in specs)


def conda_deps() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    specs: list[str] = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            specs += [s for s in dep.get("pip", []) if not s.startswith("-")]
        else:
            specs.append(dep)
    out = dict(_parse(s) for s in specs)
    out.pop("python", None)
    out.pop("pip", None)
    return out


def test_same_dependencies_and_bounds() -> None:
    py, conda = pyproject_deps(), conda_deps()
    assert set(py) == set(conda), f"only in pyproject: {set(py) - set(conda)}; only in environment.yml: {set(conda) - set(py)}"
    for name in py:
        assert py[name] == conda[name], f"{name}: pyproject {py[name]!r} vs environment.yml {conda[name]!r}"


def test_required_dependencies_present() -> None:
    need = {"torch", "torchvision", "numpy", "scipy", "matplotlib", "scikit-learn", "ipywidgets", "jupyterlab",
            "nbval", "clean-fid", "tqdm", "pytest"}
    assert need <= set(pyproject_deps())


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "python3 -m cmtutor.quickstart test"
    assert command in readme and command in ci
    assert "python3 -m cmtutor.quickstart course" in readme


def test_the_course_command_starts_jupyterlab_as_root_too(tmp_path: Path) -> None:
    """In a container the user is often root, and JupyterLab refuses to start as root without --allow-root:
    quickstart adds it there (and only there), and JupyterLab then starts."""
    import os
    import subprocess
    import sys
    import time

    from cmtutor import quickstart

    py = Path(sys.executable)
    assert "--allow-root" in quickstart.lab_command(py, [], is_root=True)
    assert "--allow-root" not in quickstart.lab_command(py, [], is_root=False)
    assert quickstart.lab_command(py, ["--allow-root"], is_root=True).count("--allow-root") == 1
    if not (hasattr(os, "geteuid") and os.geteuid() == 0):
        return  # the launch below is about root
    cmd = quickstart.lab_command(py, ["--no-browser", "--port=0", "--ServerApp.ip=127.0.0.1",
                                      "--ServerApp.token=", f"--ServerApp.root_dir={ROOT}"], is_root=True)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    log = tmp_path / "lab.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 60
            while time.time() < deadline and "is running at" not in log.read_text() and proc.poll() is None:
                time.sleep(0.2)
            assert "is running at" in log.read_text(), log.read_text()[-2000:]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
