"""Remove the parts of the plugin that were not chosen."""

from pathlib import Path

MODULE = Path("src") / "{{ cookiecutter.__module_name }}"
CHOSEN = {
    "tasks": "{{ cookiecutter.include_tasks }}" == "True",
    "state_handler": "{{ cookiecutter.include_state_handler }}" == "True",
    "log_handler": "{{ cookiecutter.include_log_handler }}" == "True",
}
FILES = {
    "tasks": [MODULE / "tasks.py", Path("tests") / "test_tasks.py"],
    "state_handler": [MODULE / "state_handler.py", Path("tests") / "test_state_handler.py"],
    "log_handler": [MODULE / "log_handler.py", Path("tests") / "test_log_handler.py"],
}

for part, files in FILES.items():
    if not CHOSEN[part]:
        for path in files:
            path.unlink()
