"""flow.visualize() and ``plait visualize`` (plait/visualize.py) with the real Graphviz ``dot``."""

from __future__ import annotations

import os
import shutil
import textwrap
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from plait import Flow, Parameter, task
from plait.cli import main
from plait.errors import GraphvizNotFoundError
from plait.visualize import STATE_COLOURS

# `make test` installs Graphviz; elsewhere these tests skip, except in CI where they must run.
needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None and not os.environ.get("CI"),
    reason="Graphviz `dot` is not installed (apt-get install graphviz)",
)


@task
def extract(n):
    return list(range(n))


@task
def transform(x):
    if x == 2:
        raise ValueError("bad row")
    return x * 10


@task
def load(rows):
    return len(rows)


def build() -> Flow:
    with Flow("etl-graph") as flow:
        rows = extract(Parameter("n", default=4))
        load(transform.map(rows))
    return flow


def svg_texts(data: bytes) -> list[str]:
    root = ET.fromstring(data)
    return [el.text for el in root.iter() if el.tag.endswith("text") and el.text]


@needs_dot
def test_svg_is_produced_and_names_every_task(tmp_path):
    flow = build()

    path = flow.visualize(filename=str(tmp_path / "etl"))

    assert path == str(tmp_path / "etl.svg")
    data = (tmp_path / "etl.svg").read_bytes()
    texts = svg_texts(data)
    for t in flow:
        assert t.name in texts, f"task {t.name!r} is not drawn"
    assert "rows" in texts  # edges carry the input they feed


@needs_dot
def test_visualize_without_filename_returns_the_rendered_bytes():
    data = build().visualize(format="png")
    assert data.startswith(b"\x89PNG")


@needs_dot
def test_flow_state_colours_tasks_and_counts_mapped_children():
    flow = build()
    state = flow.run()

    svg = flow.visualize(flow_state=state)
    texts = svg_texts(svg)

    assert "4 mapped runs" in texts  # the mapped task is one node with its count
    text = svg.decode()
    assert STATE_COLOURS["Failed"] in text  # transform has a failed child
    assert STATE_COLOURS["Success"] in text  # extract succeeded
    assert STATE_COLOURS["TriggerFailed"] in text  # load did not run


def test_dot_text_marks_mapped_tasks_and_state_names():
    flow = build()
    state = flow.run()
    dot = flow.to_dot(flow_state=state)
    assert '"transform" [peripheries="2"' in dot
    assert "TriggerFailed" in dot and "Mapped" in dot
    assert '"extract" -> "transform" [label="x (mapped)", style="dashed"]' in dot
    plain = flow.to_dot()
    assert "(mapped)" in plain and "Success" not in plain


def test_without_dot_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no dot anywhere
    with pytest.raises(GraphvizNotFoundError) as info:
        build().visualize()
    message = str(info.value)
    assert "dot" in message and "apt-get install graphviz" in message
    assert "etl-graph" in message
    # the DOT text needs no Graphviz
    assert build().visualize(format="dot").startswith(b"digraph")


FLOW_FILE = textwrap.dedent(
    """
    from plait import Flow, task

    @task
    def first():
        return 1

    @task
    def second(x):
        return x + 1

    with Flow("cli-graph") as flow:
        second(first())
    """
)


@needs_dot
def test_cli_visualize_writes_the_svg(tmp_path):
    source = tmp_path / "graph_flow.py"
    source.write_text(FLOW_FILE)
    out = tmp_path / "flow.svg"

    result = CliRunner().invoke(main, ["visualize", f"{source}:flow", "-o", str(out)])

    assert result.exit_code == 0, result.output
    assert str(out) in result.output
    texts = svg_texts(out.read_bytes())
    assert "first" in texts and "second" in texts


def test_cli_visualize_without_dot_exits_with_the_install_hint(tmp_path, monkeypatch):
    source = tmp_path / "graph_flow_nodot.py"
    source.write_text(FLOW_FILE)
    monkeypatch.setenv("PATH", str(tmp_path))
    result = CliRunner().invoke(main, ["visualize", str(source), "-o", str(tmp_path / "x.svg")])
    assert result.exit_code == 1
    assert "apt-get install graphviz" in result.output
