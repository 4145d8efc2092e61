"""Results, checkpoints and targets (plait/results.py, plait/engine/extras.py)."""

from __future__ import annotations

import json
import pickle

import pytest

from plait import Flow, Parameter, task
from plait.errors import ResultError, ResultLocationError, UnknownResultTypeError
from plait.results import (
    JSONSerializer,
    LocalResult,
    PickleSerializer,
    Result,
    Serializer,
    get_serializer,
    register_serializer,
    resolve_result,
    result_types,
)
from plait.states import Cached, Failed, Success


@task
def square(x):
    return x * x


# --- the Result interface ----------------------------------------------------------------------


def test_local_result_writes_reads_and_checks_a_templated_location(tmp_path):
    result = LocalResult(dir=tmp_path, location="{flow_name}/{date}/{task_name}-{map_index}.pkl")

    stored = result.write({"rows": [1, 2]}, flow_name="etl", date="2026-01-31", task_name="load", map_index=3)

    assert stored.location == "etl/2026-01-31/load-3.pkl"
    assert stored.value == {"rows": [1, 2]}
    assert pickle.loads((tmp_path / "etl/2026-01-31/load-3.pkl").read_bytes()) == {"rows": [1, 2]}
    assert result.location.startswith("{flow_name}")  # the configured result is unchanged
    assert result.read("etl/2026-01-31/load-3.pkl").value == {"rows": [1, 2]}
    assert result.exists("etl/2026-01-31/load-3.pkl")
    assert result.exists(flow_name="etl", date="2026-01-31", task_name="load", map_index=3)
    assert not result.exists(flow_name="etl", date="2026-02-01", task_name="load", map_index=3)


def test_json_serializer_writes_plain_json(tmp_path):
    result = LocalResult(dir=tmp_path, location="{name}.json", serializer="json")
    result.write([1, "two", None], name="values")
    assert json.loads((tmp_path / "values.json").read_text()) == [1, "two", None]


def test_missing_template_key_is_named_in_the_error(tmp_path):
    result = LocalResult(dir=tmp_path, location="{flow_name}/{region}.pkl")
    with pytest.raises(ResultLocationError) as info:
        result.write(1, flow_name="etl")
    message = str(info.value)
    assert "{region}" in message
    assert "flow_name" in message  # lists what is available
    assert "context=" in message  # and says how to provide it


def test_read_of_a_missing_location_names_the_path(tmp_path):
    with pytest.raises(ResultError, match=str(tmp_path / "nope.pkl")):
        LocalResult(dir=tmp_path).read("nope.pkl")


def test_register_serializer_adds_a_named_serializer(tmp_path):
    class Upper(Serializer):
        extension = "txt"

        def serialize(self, value):
            return value.upper().encode()

        def deserialize(self, data):
            return data.decode().lower()

    register_serializer("upper-test", Upper)
    result = LocalResult(dir=tmp_path, location="x.txt", serializer="upper-test")
    result.write("hello", unused=1)
    assert (tmp_path / "x.txt").read_text() == "HELLO"
    assert result.read("x.txt").value == "hello"
    with pytest.raises(ResultError, match="upper-test"):
        get_serializer("no-such-serializer-upper-test")


def test_get_serializer_by_name_class_and_instance():
    assert isinstance(get_serializer("pickle"), PickleSerializer)
    assert isinstance(get_serializer(JSONSerializer), JSONSerializer)
    inst = JSONSerializer()
    assert get_serializer(inst) is inst


# --- resolving results named by URL ----------------------------------------------------------


def test_resolve_result_accepts_instances_paths_and_file_urls(tmp_path):
    mine = LocalResult(dir=tmp_path)
    assert resolve_result(mine) is mine
    assert resolve_result(None) is None

    bare = resolve_result(str(tmp_path))
    assert isinstance(bare, LocalResult) and bare.dir == tmp_path and bare.location is None

    url = resolve_result(f"file://{tmp_path}/{{flow_name}}/{{task_name}}.json")
    assert isinstance(url, LocalResult)
    assert url.dir == tmp_path
    assert url.location == "{flow_name}/{task_name}.json"
    assert isinstance(url.serializer, JSONSerializer)


def test_unknown_url_scheme_says_which_plugin_to_install(monkeypatch):
    monkeypatch.setenv("PLAIT_LOAD_PLUGINS", "")  # as if plait-s3 were not installed
    with pytest.raises(UnknownResultTypeError) as info:
        resolve_result("s3://bucket/prefix/{task_name}.pkl")
    message = str(info.value)
    assert "'s3'" in message
    assert "install" in message and "plugin" in message
    assert "file" in message  # the known schemes


def test_result_types_maps_file_to_local_result():
    assert result_types()["file"] is LocalResult


def test_task_and_flow_accept_result_urls(tmp_path):
    t = task(lambda: 1, result=str(tmp_path))
    assert isinstance(t.result, LocalResult)
    flow = Flow("f", result=f"file://{tmp_path}")
    assert isinstance(flow.result, LocalResult) and flow.result.dir == tmp_path


# --- checkpoints --------------------------------------------------------------------------------


def test_checkpoint_persists_each_successful_result(tmp_path):
    @task(checkpoint=True, result=LocalResult(dir=tmp_path, location="{flow_name}/{task_name}{map_suffix}.pkl"))
    def square(x):
        return x * x

    with Flow("ckpt") as flow:
        square.map([1, 2, 3])

    state = flow.run()

    assert state.is_successful()
    stored = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert stored == ["square-0.pkl", "square-1.pkl", "square-2.pkl"]
    assert pickle.loads((tmp_path / "ckpt" / "square-2.pkl").read_bytes()) == 9


def test_flow_result_checkpoints_every_task_but_parameters_and_opt_outs(tmp_path):
    @task
    def double(x):
        return 2 * x

    @task(checkpoint=False)
    def secret(x):
        return x

    with Flow("flow-result", result=LocalResult(dir=tmp_path, location="{task_slug}.json", serializer="json")) as flow:
        n = Parameter("n", default=4)
        d = double(n)
        secret(d)

    state = flow.run()

    assert state.is_successful()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["double.json"]
    assert json.loads((tmp_path / "double.json").read_text()) == 8


def test_default_checkpoint_location_is_unique_per_run(tmp_path):
    @task(checkpoint=True, result=LocalResult(dir=tmp_path))
    def one():
        return 1

    with Flow("default-loc") as flow:
        one()
    flow.run()
    flow.run()
    files = list(tmp_path.rglob("*.pkl"))
    assert len(files) == 2  # one per flow run id
    assert all(f.parent.parent.name == "default-loc" for f in files)


def test_checkpoint_that_cannot_be_written_fails_the_task_with_the_path(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the results directory should be")

    @task(checkpoint=True, result=LocalResult(dir=blocker, location="out/{task_name}.pkl"))
    def compute():
        return 1

    with Flow("bad-ckpt") as flow:
        c = compute()

    state = flow.run()

    task_state = state.result[c]
    assert isinstance(task_state, Failed)
    assert str(blocker / "out" / "compute.pkl") in task_state.message
    assert state.is_failed()


def test_checkpoint_failure_is_retried_like_any_failure(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    calls = []

    @task(checkpoint=True, max_retries=1, result=LocalResult(dir=blocker, location="{task_name}.pkl"))
    def compute():
        calls.append(1)
        return 1

    with Flow("retry-ckpt") as flow:
        c = compute()

    state = flow.run()
    assert len(calls) == 2
    assert state.result[c].is_failed()


def test_bad_location_template_fails_the_task_with_the_missing_key(tmp_path):
    @task(checkpoint=True, result=LocalResult(dir=tmp_path, location="{region}/{task_name}.pkl"))
    def compute():
        return 1

    with Flow("bad-template") as flow:
        c = compute()

    state = flow.run()
    assert state.result[c].is_failed()
    assert "{region}" in state.result[c].message


def test_location_template_can_use_run_context_and_inputs(tmp_path):
    @task(checkpoint=True, result=LocalResult(dir=tmp_path, location="{region}/{day}/{task_name}.pkl"))
    def compute(day):
        return day

    with Flow("ctx-template") as flow:
        compute("monday")

    state = flow.run(context={"region": "eu"})
    assert state.is_successful()
    assert pickle.loads((tmp_path / "eu" / "monday" / "compute.pkl").read_bytes()) == "monday"


# --- targets ---------------------------------------------------------------------------------------


def test_existing_target_skips_the_work_and_reads_the_result(tmp_path):
    calls = []

    @task(target="{task_name}/{today}.pkl", result=LocalResult(dir=tmp_path))
    def expensive():
        calls.append(1)
        return {"answer": 42}

    @task
    def use(value):
        return value["answer"] + 1

    with Flow("target") as flow:
        u = use(expensive())

    first = flow.run()
    assert first.is_successful() and calls == [1]
    written = list((tmp_path / "expensive").iterdir())
    assert len(written) == 1

    second = flow.run()

    assert calls == [1]  # the work did not run again
    exp_state = next(s for t, s in second.result.items() if t.name == "expensive")
    assert isinstance(exp_state, Cached)
    assert exp_state.result == {"answer": 42}
    assert exp_state.result_location == str(written[0])
    assert second.result[u].result == 43


def test_target_written_elsewhere_is_used_without_running(tmp_path):
    (tmp_path / "made-by-hand.json").write_text(json.dumps([1, 2, 3]))

    @task(target="made-by-hand.json", result=LocalResult(dir=tmp_path, serializer="json"))
    def produce():
        raise AssertionError("must not run: the target exists")

    with Flow("target-by-hand") as flow:
        p = produce()

    state = flow.run()
    assert state.result[p].is_cached()
    assert state.result[p].result == [1, 2, 3]


def test_target_per_map_child(tmp_path):
    calls = []

    @task(target="sq-{x}.pkl", result=LocalResult(dir=tmp_path))
    def square(x):
        calls.append(x)
        return x * x

    with Flow("target-map") as flow:
        s = square.map([1, 2, 3])

    flow.run()
    (tmp_path / "sq-2.pkl").unlink()
    state = flow.run()

    assert calls == [1, 2, 3, 2]
    assert [c.name for c in state.result[s].map_states] == ["Cached", "Success", "Cached"]
    assert state.result[s].result == [1, 4, 9]


def test_state_handlers_see_the_cached_state(tmp_path):
    seen = []

    def handler(task, old, new):
        seen.append(new.name)

    @task(target="t.pkl", result=LocalResult(dir=tmp_path), state_handlers=[handler])
    def work():
        return 1

    with Flow("target-handlers") as flow:
        work()
    flow.run()
    seen.clear()
    flow.run()
    assert seen == ["Cached"]


def test_result_is_abstract_for_backends():
    with pytest.raises(NotImplementedError):
        Result(location="x").write_bytes("x", b"")
    assert isinstance(Success("ok", 1), Success)


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_targets_and_checkpoints_work_on_every_executor(tmp_path, executor):
    result = LocalResult(dir=tmp_path, location="{task_name}{map_suffix}.pkl")

    with Flow(f"executors-{executor}") as flow:
        s = square.map([1, 2, 3], task_args={"checkpoint": True, "result": result})

    state = flow.run(executor=executor)
    assert state.result[s].result == [1, 4, 9]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["square-0.pkl", "square-1.pkl", "square-2.pkl"]


def test_bad_result_options_are_clear_errors():
    with pytest.raises(TypeError, match="checkpoint must be True, False or None"):
        task(lambda: 1, checkpoint="yes")
    with pytest.raises(TypeError, match="target must be a location template"):
        task(lambda: 1, target=5)
    with pytest.raises(TypeError, match="result must be a Result"):
        task(lambda: 1, result=5)
    with pytest.raises(TypeError, match="terminal_state_handler"):
        Flow("f", terminal_state_handler="nope")


def test_result_options_are_serialized_only_when_set(tmp_path):
    with Flow("serialized") as flow:
        square(2, task_args={"target": "{task_name}.pkl", "cache_for": 60})
        double_plain = square(3)
    entries = {t["slug"]: t["options"] for t in flow.serialize()["tasks"]}
    assert entries["square"]["target"] == "{task_name}.pkl"
    assert "target" not in entries[double_plain.slug]


def test_write_inside_a_task_fills_the_template_from_the_run_context(tmp_path):
    result = LocalResult(dir=tmp_path)

    @task
    def save():
        return result.write("saved").location

    with Flow("write-in-task") as flow:
        s = save()

    state = flow.run(context={"flow_run_id": "run-1"})
    assert state.result[s].result == "write-in-task/run-1/save.pkl"
    assert result.read("write-in-task/run-1/save.pkl").value == "saved"
