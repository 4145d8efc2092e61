from pathlib import Path

from plait.testing import run_markdown_examples


def test_readme_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_markdown_examples(Path(__file__).resolve().parents[1] / "README.md", min_blocks=1)
