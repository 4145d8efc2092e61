"""The cookiecutter template: every combination of options renders the exact expected files,
bad names are refused, and a rendered plugin installs, passes its own tests and is listed."""

from __future__ import annotations

import itertools
import tomllib
from pathlib import Path

import pytest
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "cookiecutter-plugin"

ALWAYS = {
    ".github/workflows/ci.yml",
    "CHANGELOG.md",
    "README.md",
    "pyproject.toml",
    "src/plait_{m}/__init__.py",
    "src/plait_{m}/plugin.py",
    "src/plait_{m}/py.typed",
    "src/plait_{m}/settings.py",
    "tests/conftest.py",
    "tests/test_plugin.py",
}
PARTS = {
    "include_tasks": {"src/plait_{m}/tasks.py", "tests/test_tasks.py"},
    "include_state_handler": {"src/plait_{m}/state_handler.py", "tests/test_state_handler.py"},
    "include_log_handler": {"src/plait_{m}/log_handler.py", "tests/test_log_handler.py"},
}
COMBINATIONS = list(itertools.product([True, False], repeat=3))


def render(out: Path, name: str, tasks: bool, state: bool, log: bool) -> Path:
    return Path(
        cookiecutter(
            str(TEMPLATE),
            no_input=True,
            output_dir=str(out),
            extra_context={
                "plugin_name": name,
                "description": f"The {name} plugin.",
                "author": "Test Author",
                "include_tasks": tasks,
                "include_state_handler": state,
                "include_log_handler": log,
            },
        )
    )


@pytest.mark.parametrize(("tasks", "state", "log"), COMBINATIONS, ids=lambda v: "y" if v else "n")
def test_each_combination_renders_the_exact_file_set(tmp_path, tasks, state, log):
    root = render(tmp_path, "my-alerts", tasks, state, log)
    assert root.name == "plait-my-alerts"
    expected = set(ALWAYS)
    for key, chosen in zip(PARTS, (tasks, state, log), strict=True):
        if chosen:
            expected |= PARTS[key]
    expected = {p.format(m="my_alerts") for p in expected}
    assert {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} == expected
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "plait-my-alerts"
    assert pyproject["project"]["entry-points"]["plait"] == {"my-alerts": "plait_my_alerts.plugin"}
    assert any(dep.startswith("plait") for dep in pyproject["project"]["dependencies"])
    for path in root.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    plugin = (root / "src/plait_my_alerts/plugin.py").read_text()
    assert ("import plait_register_tasks" in plugin) == tasks
    assert ("import plait_task_state_changed" in plugin) == state
    assert ("import plait_register_log_handlers" in plugin) == log
    assert "${{ matrix.python-version }}" in (root / ".github/workflows/ci.yml").read_text()


@pytest.mark.parametrize("bad", ["Bad Name", "1st", "has.dot", "plait-x", "trailing-", "import"])
def test_pre_gen_hook_rejects_bad_names(tmp_path, capfd, bad):
    with pytest.raises(FailedHookException):
        render(tmp_path, bad, True, True, False)
    assert "ERROR:" in capfd.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_rendered_plugins_install_pass_their_tests_and_are_listed(plait_venv, tmp_path):
    full = render(tmp_path, "full", True, True, True)
    bare = render(tmp_path, "bare", False, False, False)
    plait_venv.pip_install(full, bare)
    for root, count in ((full, 8), (bare, 3)):
        out = plait_venv.run(plait_venv.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=root)
        assert f"{count} passed" in out.stdout, out.stdout
    records = plait_venv.plugins()
    assert records["full"]["distribution"] == "plait-full"
    assert records["full"]["hooks"] == [
        "plait_register_log_handlers",
        "plait_register_settings",
        "plait_register_tasks",
        "plait_task_state_changed",
    ]
    assert records["full"]["config"] == {"state": "configured", "detail": "defaults"}
    assert (records["bare"]["status"], records["bare"]["hooks"]) == ("loaded", ["plait_register_settings"])
    out = plait_venv.run(plait_venv.plait, "tasks", PLAIT_LOAD_PLUGINS="full")
    assert out.stdout.split() == ["greet", "full", "Say", "hello", "to", "someone."]


@pytest.mark.slow
def test_plait_plugin_new_from_the_installed_wheel(plait_venv, tmp_path):
    out = plait_venv.run(plait_venv.plait, "plugin", "new", "--name", "wheel-check", "--no-input", cwd=tmp_path)
    assert "Created" in out.stdout
    assert (tmp_path / "plait-wheel-check" / "src" / "plait_wheel_check" / "plugin.py").is_file()


def _workflow_steps(root: Path) -> list[dict]:
    import yaml  # cookiecutter's own dependency

    workflow = yaml.safe_load((root / ".github" / "workflows" / "ci.yml").read_text())
    return workflow["jobs"]["test"]["steps"]


@pytest.mark.slow
def test_the_generated_ci_workflow_passes_in_a_fresh_venv_with_plait_from_this_repository(tmp_path):
    """Bake the template, make a fresh venv (no plait in it) and run the generated workflow's steps
    there, as GitHub's runner would: its checkout of Plait's repository is this repository."""
    import os
    import shutil
    import subprocess
    import sys

    root = render(tmp_path, "ci-check", True, True, True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLAIT", "PYTEST_", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    steps = _workflow_steps(root)
    ran = []
    for step in steps:
        uses = step.get("uses", "")
        if uses.startswith("actions/checkout"):
            target = step.get("with", {}).get("path")
            if target:  # Plait's repository, checked out next to the plugin
                assert "PLAIT_REPOSITORY" in step["with"]["repository"]
                shutil.copytree(ROOT, root / target, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__"))
            continue
        if uses.startswith("actions/setup-python"):
            continue  # the fresh venv's python is first on PATH
        assert "run" in step, step
        out = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=root, env=env, capture_output=True, text=True)
        assert out.returncode == 0, f"step {step.get('name') or step['run']!r} failed:\n{out.stdout}\n{out.stderr}"
        ran.append(step["run"].strip())
    assert ran[-1] == "python -m pytest"
    assert "8 passed" in out.stdout, out.stdout
    names = [s.get("name", "") for s in steps]
    assert sum("until plait is on PyPI" in n for n in names) == 2


@pytest.mark.slow
def test_the_documented_install_works_in_a_fresh_venv(tmp_path):
    """The generated README's path: the core from a built wheel, then `pip install -e ".[test]"`."""
    import os
    import subprocess
    import sys

    root = render(tmp_path, "readme-check", False, True, False)
    readme = (root / "README.md").read_text()
    assert "pip install /path/to/plait/core" in readme and 'pip install -e ".[test]"' in readme
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT / "core")], check=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLAIT", "PYTEST_", "VIRTUAL_ENV"))}
    (wheel,) = wheels.glob("plait-*.whl")
    for args in (
        [python, "-m", "pip", "install", "-q", str(wheel)],
        [python, "-m", "pip", "install", "-q", "-e", ".[test]"],
    ):
        out = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    out = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=root, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0 and "4 passed" in out.stdout, out.stdout + out.stderr
