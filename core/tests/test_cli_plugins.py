from __future__ import annotations

import json

from click.testing import CliRunner

from plait.cli import main


def test_plait_plugins_lists_loaded_and_failed(install_dist):
    install_dist("plait-broken", {"plait_broken": "raise ImportError('needs libfoo')\n"}, {"broken": "plait_broken"})
    install_dist(
        "plait-good",
        {"plait_good": "import plait\n@plait.hookimpl\ndef plait_task_state_changed(task):\n    pass\n"},
        {"good": "plait_good"},
        version="2.3.4",
    )
    out = CliRunner().invoke(main, ["plugins", "--json"])
    assert out.exit_code == 0, out.output
    rows = {row["name"]: row for row in json.loads(out.output)}
    assert rows["good"] == {
        "name": "good",
        "distribution": "plait-good",
        "version": "2.3.4",
        "status": "loaded",
        "hooks": ["plait_task_state_changed"],
        "error": None,
        "builtin": False,
        "config": None,
    }
    assert rows["broken"]["status"] == "failed" and "needs libfoo" in rows["broken"]["error"]
    assert rows["plait.builtin"]["hooks"] == [
        "plait_register_agents",
        "plait_register_executors",
        "plait_register_result_types",
        "plait_register_storage",
    ]
    table = CliRunner().invoke(main, ["plugins"], terminal_width=200).output
    assert "plait-good" in table and "2.3.4" in table and "needs libfoo" in table


def test_plait_tasks_with_no_library(monkeypatch):
    monkeypatch.setenv("PLAIT_LOAD_PLUGINS", "")  # installed plugins (plait-s3...) offer tasks
    out = CliRunner().invoke(main, ["tasks"])
    assert out.exit_code == 0
    assert "No plugin offers tasks" in out.output


def test_plait_plugin_new_no_input(tmp_path):
    out = CliRunner().invoke(
        main,
        ["plugin", "new", "--name", "weather", "--description", "Weather tasks", "--no-tasks", "--no-input"]
        + ["--author", "Ada", "-o", str(tmp_path)],
    )
    assert out.exit_code == 0, out.output
    root = tmp_path / "plait-weather"
    assert (root / "src" / "plait_weather" / "plugin.py").is_file()
    assert not (root / "src" / "plait_weather" / "tasks.py").exists()
    pyproject = (root / "pyproject.toml").read_text()
    assert 'name = "plait-weather"' in pyproject and '"weather" = "plait_weather.plugin"' in pyproject
    assert 'description = "Weather tasks"' in pyproject and 'name = "Ada"' in pyproject


def test_plait_plugin_new_interactive(tmp_path):
    # Answers: name, description, author, email, tasks?, state handler?, log handler?
    answers = "clock\nTime tasks\nBob\nbob@example.com\nyes\nno\nyes\n"
    out = CliRunner().invoke(main, ["plugin", "new", "-o", str(tmp_path)], input=answers)
    assert out.exit_code == 0, out.output
    module = tmp_path / "plait-clock" / "src" / "plait_clock"
    assert sorted(p.name for p in module.iterdir()) == [
        "__init__.py",
        "log_handler.py",
        "plugin.py",
        "py.typed",
        "settings.py",
        "tasks.py",
    ]


def test_plait_plugin_new_checks_the_name_at_its_prompt(tmp_path):
    # A bad name is refused as it is typed and asked again, before any other question.
    answers = "Bad Name\nplait-x\nclock\nTime tasks\nBob\nbob@example.com\nno\nno\nno\n"
    out = CliRunner().invoke(main, ["plugin", "new", "-o", str(tmp_path)], input=answers)
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("Error:")]
    assert len(errors) == 2
    assert "'Bad Name' is not a valid plugin name" in lines[errors[0]]
    assert "starts with 'plait'" in lines[errors[1]]
    description = next(i for i, line in enumerate(lines) if "One line saying what the plugin does" in line)
    assert errors[-1] < description
    assert "Traceback" not in out.output
    assert (tmp_path / "plait-clock" / "src" / "plait_clock" / "plugin.py").is_file()


def test_every_prompt_of_plait_plugin_new_has_a_human_label(tmp_path):
    import json

    from plait.cli.plugin_new import PROMPTS, template_dir

    template = json.loads((template_dir() / "cookiecutter.json").read_text())
    asked = {key for key, _option, _label in PROMPTS}
    questions = {key for key in template if not key.startswith("_")}
    # everything the template asks is asked by the command, or has a label of its own
    for key in questions:
        assert key in asked or key in template["__prompts__"], key
        assert key in template["__prompts__"], f"{key} has no label in cookiecutter.json"
    for _key, _option, label in PROMPTS:
        assert label[0].isupper() and "_" not in label.split("(")[0], label


def test_plait_plugin_new_without_cookiecutter_says_how_to_get_it(tmp_path, monkeypatch):
    import sys

    # cookiecutter is the "scaffold" extra: an environment without it cannot import it
    for name in [m for m in sys.modules if m == "cookiecutter" or m.startswith("cookiecutter.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "cookiecutter", None)
    out = CliRunner().invoke(main, ["plugin", "new", "--name", "x", "--no-input", "-o", str(tmp_path)])
    assert out.exit_code == 1
    assert 'pip install "plait[scaffold]"' in out.output
    assert "Traceback" not in out.output
    assert list(tmp_path.iterdir()) == []


def test_plait_plugin_new_rejects_a_bad_name(tmp_path):
    out = CliRunner().invoke(main, ["plugin", "new", "--name", "Bad Name!", "--no-input", "-o", str(tmp_path)])
    assert out.exit_code == 2
    assert "Invalid value for --name: 'Bad Name!' is not a valid plugin name" in " ".join(out.output.split())
    assert list(tmp_path.iterdir()) == []


def test_plait_plugin_new_refuses_to_overwrite(tmp_path):
    args = ["plugin", "new", "--name", "twice", "--no-input", "-o", str(tmp_path)]
    assert CliRunner().invoke(main, args).exit_code == 0
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1
    assert "The plugin was not created" in again.output and "choose another --name or --output-dir" in again.output


def test_trace_plugins_shows_hook_calls_from_the_command_line(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    flow_file = tmp_path / "tiny.py"
    flow_file.write_text(
        "from plait import Flow, task\n@task\ndef one():\n    return 1\nwith Flow('tiny') as flow:\n    one()\n"
    )
    plait = str(Path(sys.executable).with_name("plait"))
    command = [plait, "run", str(flow_file), "--executor", "threads"]
    env = {**os.environ, "PLAIT_TRACE_PLUGINS": "1"}
    traced = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert traced.returncode == 0, traced.stderr
    # the built-in plugin registers the executors, so this hook always has an implementation
    assert "hook plait_register_executors() -> plait.builtin" in traced.stderr
    env.pop("PLAIT_TRACE_PLUGINS")
    quiet = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert quiet.returncode == 0 and "hook plait_register_executors()" not in quiet.stderr


def test_plait_plugins_into_a_pipe_is_not_squeezed_to_80_columns():
    import os
    import subprocess
    import sys
    from pathlib import Path

    plait = str(Path(sys.executable).with_name("plait"))
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["PLAIT_LOAD_PLUGINS"] = ""
    out = subprocess.run([plait, "plugins"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    builtin = [line for line in out.stdout.splitlines() if "plait.builtin" in line]
    assert len(builtin) == 1  # one row, not wrapped
    row = builtin[0]
    assert "plait_register_executors, plait_register_result_types" in row
    assert max(len(line) for line in out.stdout.splitlines()) > 80
