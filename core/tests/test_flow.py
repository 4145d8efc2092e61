"""plait/flow.py: building flows (functional and imperative), checking, running, describing."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

import plait
from plait import Edge, Flow, Parameter, Task, task, unmapped
from plait.errors import CycleError, FlowRunError, FlowValidationError, ParameterError, TaskBindError
from plait.tasks import Constant

# -- the issue's example, verbatim --------------------------------------------------------


@task(max_retries=3, retry_delay=timedelta(seconds=1))
def fetch(n):
    plait.context.logger.info("fetching %s", n)
    return list(range(n))


@task
def square(x, offset):
    return x * x + offset


@task
def total(xs):
    return sum(xs)


def test_issue_example_on_every_executor(any_executor):
    with Flow("numbers") as flow:
        n = Parameter("n", default=10)
        squares = square.map(fetch(n), offset=unmapped(1))
        result = total(squares)

    state = flow.run(parameters={"n": 5}, executor=any_executor)
    assert state.is_successful()
    assert state.result[result].result == 35
    assert state.result[squares].result == [1, 2, 5, 10, 17]
    assert state.result[n].result == 5


def test_issue_example_uses_parameter_default():
    with Flow("numbers") as flow:
        n = Parameter("n", default=10)
        result = total(square.map(fetch(n), offset=unmapped(1)))
    assert flow.run().result[result].result == sum(x * x + 1 for x in range(10))


# -- binding ----------------------------------------------------------------------------


@task
def add(x, y=0):
    return x + y


@task
def collect(items):
    return items


def test_calling_a_task_binds_a_copy_with_constants():
    with Flow("f") as flow:
        a = add(1, y=2)
        b = add(a, 10)
    assert a is not add and b is not add and a is not b
    assert add not in flow
    assert flow.constants[a] == {"x": 1, "y": 2}
    assert flow.constants[b] == {"y": 10}
    assert flow.edges == {Edge(a, b, key="x")}
    assert {a.slug, b.slug} == {"add", "add-1"}
    state = flow.run()
    assert state.result[b].result == 13


def test_collections_holding_tasks_become_tasks():
    with Flow("f") as flow:
        a, b = add(1), add(2)
        as_list = collect([a, b, 3])
        as_tuple = collect((a, 4))
        as_dict = collect({"first": a, "second": {"inner": b}})
        plain = collect([5, 6])
    state = flow.run()
    assert state.result[as_list].result == [1, 2, 3]
    assert state.result[as_tuple].result == (1, 4)
    assert state.result[as_dict].result == {"first": 1, "second": {"inner": 2}}
    assert state.result[plain].result == [5, 6]
    assert flow.constants[plain] == {"items": [5, 6]}


def test_upstream_tasks_add_ordering_only_edges(executor):
    with Flow("f") as flow:
        first = add(1)
        second = add(2, upstream_tasks=[first])
    (edge,) = flow.edges_to(second)
    assert edge.upstream_task is first and edge.key is None
    assert flow.sorted_tasks() == (first, second)
    assert flow.run(executor=executor).result[second].result == 2


def test_upstream_task_failure_stops_downstream_by_default():
    @task
    def boom():
        raise ValueError("no")

    with Flow("f") as flow:
        after = add(1, upstream_tasks=[boom()])
    state = flow.run()
    assert state.is_failed()
    assert state.result[after].name == "TriggerFailed"


# -- the imperative API -------------------------------------------------------------------


class Double(Task):
    def run(self, x):
        return 2 * x


def test_add_task_and_add_edge():
    flow = Flow("imperative")
    one = Constant(21, name="one")
    double = Double()
    assert flow.add_task(one) is one
    edge = flow.add_edge(one, double, key="x")
    assert edge == Edge(one, double, key="x")
    assert flow.tasks == {one, double}
    assert flow.root_tasks() == {one} and flow.terminal_tasks() == {double}
    assert flow.run().result[double].result == 42


def test_set_dependencies_with_upstream_keyword_and_mapped(executor):
    flow = Flow("imperative")
    items = Constant([1, 2, 3], name="items")
    gate = Constant(None, name="gate")
    double = Double()
    # mapped=True maps over upstream_tasks too (Prefect 1); unmapped() waits for the whole task
    flow.set_dependencies(double, upstream_tasks=[unmapped(gate)], keyword_tasks={"x": items}, mapped=True)
    summed = total.copy()
    flow.set_dependencies(summed, keyword_tasks={"xs": double})
    assert flow.upstream_tasks(double) == {gate, items}
    state = flow.run(executor=executor)
    assert state.result[double].result == [2, 4, 6]
    assert state.result[summed].result == 12


def test_set_dependencies_keyword_constants_and_unmapped():
    flow = Flow("imperative")
    sq = square.copy()
    flow.set_dependencies(sq, keyword_tasks={"x": [1, 2], "offset": unmapped(10)}, mapped=True)
    assert flow.run().result[sq].result == [11, 14]


def test_set_upstream_and_set_downstream():
    flow = Flow("imperative")
    src = Constant(5, name="src")
    double = Double()
    double.set_upstream(src, flow=flow, key="x")
    tail = add.copy()
    flow.add_task(tail)
    flow.constants[tail] = {"x": 0}
    double.set_downstream(tail, flow=flow)
    assert flow.upstream_tasks(tail) == {double}
    state = flow.run()
    assert state.result[double].result == 10
    assert flow.sorted_tasks().index(tail) > flow.sorted_tasks().index(double)


def test_set_upstream_inside_with_block():
    with Flow("f") as flow:
        a = add(1)
        b = add(2)
        b.set_upstream(a)
    assert flow.upstream_tasks(b) == {a}


def test_chain_orders_tasks(executor):
    order = []

    class Record(Task):
        def run(self):
            order.append(self.name)

    a, b, c = Record(name="a"), Record(name="b"), Record(name="c")
    flow = Flow("chain")
    edges = flow.chain(a, b, c)
    assert edges == [Edge(a, b), Edge(b, c)]
    flow.run(executor=executor)
    assert order == ["a", "b", "c"]


# -- errors raised before anything runs -------------------------------------------------------


def _named(name):
    class Step(Task):
        def run(self):
            ran.append(name)

    return Step(name=name)


ran: list[str] = []


def test_cycle_names_the_tasks_on_it_in_order():
    a, b, c, d = (_named(n) for n in "abcd")
    flow = Flow("loop")
    flow.chain(d, a, b, c)
    flow.add_edge(c, a)
    with pytest.raises(CycleError) as info:
        flow.run()
    message = str(info.value)
    assert "Cycle found in flow 'loop'" in message
    # the cycle may start anywhere on it, but must follow the edges
    names = info.value.cycle
    assert names[0] == names[-1] and len(names) == 4
    assert names[:-1] in (["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"])
    assert " -> ".join(names) in message
    assert ran == []


def test_cycle_of_three_message():
    a, b, c = (_named(n) for n in "abc")
    flow = Flow("loop")
    flow.chain(a, b, c)
    flow.add_edge(c, a)
    with pytest.raises(CycleError, match=r"a -> b -> c -> a"):
        flow.validate()


def test_self_edge_is_a_cycle():
    a = _named("a")
    with pytest.raises(CycleError, match="a -> a"):
        Flow("f").add_edge(a, a)


def test_task_called_with_arguments_run_does_not_take():
    with Flow("f"):
        with pytest.raises(TaskBindError, match=r"Task 'add'.*run\(x, y=0\)") as info:
            add(1, z=3)
        assert "z" in str(info.value)
        with pytest.raises(TaskBindError, match="add"):
            add(1, 2, 3)


def test_missing_required_input_is_found_by_validate():
    with Flow("f") as flow:
        add(y=1)
    with pytest.raises(TaskBindError, match=r"Task 'add' in flow 'f' is missing input 'x'"):
        flow.validate()
    with pytest.raises(TaskBindError, match="missing input 'x'"):
        flow.run()


def test_validate_passes_a_good_flow():
    with Flow("f") as flow:
        add(add(1), 2)
    flow.validate()


def test_flow_run_inside_with_block_is_refused():
    with Flow("f") as flow:
        add(1)
        with pytest.raises(FlowRunError, match=r"inside `with Flow\(...\)`.*'f'"):
            flow.run()


def test_task_called_outside_a_flow():
    with pytest.raises(TaskBindError, match=r"Task 'add' was called outside a flow"):
        add(1)


def test_upstream_tasks_values_become_constants_and_flows_are_refused():
    with Flow("f") as flow:
        out = add(1, upstream_tasks=[3])  # Prefect 1: a plain value is a Constant task
    (up,) = flow.upstream_tasks(out)
    assert isinstance(up, Constant) and up.value == 3
    with Flow("g"), pytest.raises(TaskBindError, match="upstream_tasks must be tasks or values"):
        add(1, upstream_tasks=[flow])


def test_input_given_twice_is_refused():
    flow = Flow("f")
    a, b = add.copy(), add.copy()
    flow.add_edge(a, b, key="x")
    with pytest.raises(TaskBindError, match="already gets input 'x'"):
        flow.add_edge(add.copy(), b, key="x")


def test_reference_tasks_decide_the_flow_state():
    @task
    def boom():
        raise RuntimeError("x")

    with Flow("f") as flow:
        ok = add(1)
        boom()
    flow.set_reference_tasks([ok])
    assert flow.run().is_successful()
    with pytest.raises(FlowValidationError, match="not in the flow"):
        flow.set_reference_tasks([add])


# -- parameters -------------------------------------------------------------------------------


def test_parameters_defaults_and_values():
    with Flow("p") as flow:
        x = Parameter("x", default=3)
        y = Parameter("y", required=True)
        out = add(x, y)
    assert flow.parameters() == {x, y}
    assert flow.run(parameters={"y": 4}).result[out].result == 7
    assert flow.run(parameters={"x": 1, "y": 4}).result[out].result == 5


def test_required_parameter_missing():
    with Flow("p") as flow:
        add(Parameter("y", required=True))
    with pytest.raises(ParameterError, match=r"Flow 'p' needs a value for required parameter 'y'"):
        flow.run()


def test_unknown_parameter_lists_known_ones():
    with Flow("p") as flow:
        add(Parameter("x", default=1), Parameter("y", default=2))
    with pytest.raises(ParameterError) as info:
        flow.run(parameters={"z": 1})
    assert "'z'" in str(info.value)
    assert "x, y" in str(info.value)


def test_duplicate_parameter_name():
    with Flow("p"):
        add(Parameter("x"))
        with pytest.raises(ParameterError, match="already has a parameter named 'x'"):
            add(Parameter("x"))


def test_parameter_takes_no_inputs():
    # The error leaves the flow block, as in a user's code (caught inside, the Parameter made
    # there would be reported as an unused task as well).
    with pytest.raises(TaskBindError, match="takes no inputs"), Flow("p"):
        Parameter("x")(1)


# -- describing ------------------------------------------------------------------------------


def test_serialize_is_plain_json():
    def handler(task, old, new):
        return None

    with Flow("numbers") as flow:
        n = Parameter("n", default=10)
        squares = square.map(fetch(n), offset=unmapped(1))
        result = total(squares, task_args={"state_handlers": [handler], "tags": ["sum"]})
    data = json.loads(json.dumps(flow.serialize()))
    assert data["name"] == "numbers"
    by_slug = {t["slug"]: t for t in data["tasks"]}
    assert set(by_slug) == {"n", "fetch", "square", "total"}
    assert by_slug["fetch"]["options"]["max_retries"] == 3
    assert by_slug["fetch"]["options"]["retry_delay"] == 1.0
    assert by_slug["total"]["options"]["tags"] == ["sum"]
    assert by_slug["total"]["options"]["state_handlers"] == [handler.__qualname__]
    assert by_slug["square"]["constants"] == {"offset": 1}
    assert by_slug["square"]["function"].endswith("square")
    assert {"upstream": "fetch", "downstream": "square", "key": "x", "mapped": True, "flattened": False} in data[
        "edges"
    ]
    assert {"upstream": "n", "downstream": "fetch", "key": "n", "mapped": False, "flattened": False} in data["edges"]
    assert data["parameters"] == [{"name": "n", "default": 10, "required": False}]
    assert data["reference_tasks"] == [result.slug]


def test_flow_default_executor_by_name():
    with Flow("f", executor="threads") as flow:
        out = add(1, 2)
    assert flow.run().result[out].result == 3


def test_binding_into_an_explicit_empty_flow():
    target = Flow("explicit")
    bound = add(1, 2, flow=target)
    assert bound in target
    assert target.run().result[bound].result == 3


def test_empty_flow_runs():
    state = Flow("empty").run()
    assert state.is_successful() and state.result == {}


def test_imperative_input_run_does_not_take_is_found_before_running():
    ran.clear()
    flow = Flow("imp")
    first = _named("first")
    target = add.copy()
    flow.set_dependencies(target, keyword_tasks={"x": 1, "nope": first})
    with pytest.raises(TaskBindError, match=r"Task 'add' in flow 'imp' is given input 'nope' that its run\(x, y=0\)"):
        flow.run()
    assert ran == []


def test_run_with_var_keyword_takes_any_input():
    @task
    def anything(**values):
        return values

    flow = Flow("imp")
    target = anything.copy()
    flow.set_dependencies(target, keyword_tasks={"a": 1, "b": 2})
    assert flow.run().result[target].result == {"a": 1, "b": 2}


# -- nothing secret in flow.serialize() (issue 11) -------------------------------------------------


@task
def call_api(url, headers=None, auth=None, json=None, api_key=None, note=None):
    return url


class Vault(Task):
    """A plugin-style task that declares one of its inputs secret."""

    secret_inputs = ("passphrase_file_contents",)

    def run(self, passphrase_file_contents=None, region=None):
        return region


def test_serialize_withholds_credential_inputs_and_masks_urls_and_registered_secrets():
    from plait.secrets import register_secret

    register_secret("registered-S3cret-in-a-note")
    with Flow("leaky-constants") as flow:
        call_api(
            "https://api.example.com/v1?api_key=query-key-123&page=2",
            headers={"Authorization": "Bearer header-token-456", "Accept": "application/json"},
            auth=("alice", "basic-pw-789"),
            json={"user": "alice", "password": "body-pw-000", "nested": {"client_secret": "cs-111"}},
            api_key="kwarg-key-222",
            note="see registered-S3cret-in-a-note and postgresql://bob:url-pw-333@db/sales",
        )
        Vault()(passphrase_file_contents="declared-secret-444", region="eu-west-1")
        call_api(
            "https://h", headers=[("X-Api-Key", "header-list-555"), ("Accept", "text/csv")], task_args={"slug": "b"}
        )
    data = flow.serialize()
    text = json.dumps(data)
    for planted in (
        "query-key-123",
        "header-token-456",
        "basic-pw-789",
        "body-pw-000",
        "cs-111",
        "kwarg-key-222",
        "registered-S3cret-in-a-note",
        "url-pw-333",
        "declared-secret-444",
        "header-list-555",
    ):
        assert planted not in text, planted
    by_slug = {t["slug"]: t for t in data["tasks"]}
    consts = by_slug["call_api"]["constants"]
    # what is not secret stays, so the serialized flow still describes the flow
    assert consts["headers"] == {"Authorization": "****", "Accept": "application/json"}
    assert consts["auth"] == "****" and consts["api_key"] == "****"
    assert consts["json"] == {"user": "alice", "password": "****", "nested": {"client_secret": "****"}}
    assert consts["url"] == "https://api.example.com/v1?api_key=********&page=2"
    assert consts["note"] == "see ******** and postgresql://bob:********@db/sales"
    assert by_slug["Vault"]["constants"] == {"passphrase_file_contents": "****", "region": "eu-west-1"}
    assert by_slug["b"]["constants"]["headers"] == [["X-Api-Key", "****"], ["Accept", "text/csv"]]


def test_secret_parameter_is_marked_and_its_default_withheld_in_serialize():
    with Flow("params") as flow:
        password = Parameter("password", default="default-pw-S3cret", secret=True)
        token = Parameter("token", secret=True, required=True)
        n = Parameter("n", default=10)
        add(n, call_api(password, api_key=token))
    assert password.secret is True and token.secret is True and n.secret is False
    data = flow.serialize()
    assert data["parameters"] == [
        {"name": "n", "default": 10, "required": False},
        {"name": "password", "default": "****", "required": False, "secret": True},
        {"name": "token", "default": None, "required": True, "secret": True},
    ]
    by_slug = {t["slug"]: t for t in data["tasks"]}
    assert by_slug["password"]["options"] == {"default": "****", "required": False, "tags": [], "secret": True}
    assert "default-pw-S3cret" not in json.dumps(data)


def test_flow_save_never_writes_a_secret_parameters_default(tmp_path):
    """``flow.save`` writes a file: a secret default stays out of it, and the loaded flow asks for it."""
    with Flow("saved-secret") as flow:
        password = Parameter("password", default="saved-default-S3cret", secret=True)
        add(Parameter("n", default=10), 1)
        call_api(password, api_key="k")
    path = flow.save(tmp_path / "flow.plait")
    assert b"saved-default-S3cret" not in (tmp_path / "flow.plait").read_bytes()
    assert password.default == "saved-default-S3cret"  # the flow in memory keeps it
    loaded = Flow.load(path)
    (param,) = [p for p in loaded.parameters() if p.name == "password"]
    assert param.secret and param.required and param.default is None
    with pytest.raises(ParameterError, match="'password'"):
        loaded.run()
    assert loaded.run(parameters={"password": "given-again"}).is_successful()
    assert [p.default for p in loaded.parameters() if p.name == "n"] == [10]  # other defaults are kept


# --- Prefect 1's Flow API ------------------------------------------------------------------------


def test_parameters_can_be_given_as_keywords_with_a_clear_error_for_others():
    with Flow("kw") as flow:
        x = Parameter("x")
        y = add(x)
    assert flow.run(x=2).result[y].result == 2
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        flow.run(x=2, z=3)
    with pytest.raises(ValueError, match="return_tasks"):
        flow.run(x=1, return_tasks=[y])


def test_flow_run_name_reaches_the_context():
    @task
    def run_name():
        return plait.context.flow_run_name

    with Flow("named") as flow:
        out = run_name()
    assert flow.run(flow_run_name="nightly-42").result[out].result == "nightly-42"


def test_on_failure_is_called_once_when_a_run_fails():
    calls = []

    @task
    def boom():
        raise ValueError("boom")

    flow = Flow("fails", tasks=[boom], on_failure=lambda flow, state: calls.append((flow, state)))
    assert len(flow.state_handlers) == 1
    state = flow.run()
    assert calls == [(flow, state)] and state.is_failed()
    Flow("fine", tasks=[one_task()], on_failure=lambda *a: calls.append(a)).run()
    assert len(calls) == 1


def one_task():
    from plait.tasks import Task

    return Task(name="nothing")


def test_edges_can_be_checked_as_they_are_added():
    from plait.errors import CycleError, DuplicateInputError
    from plait.tasks import Task

    first, second = add.copy(), add.copy()
    flow = Flow("checked")
    flow.add_edge(first, second, key="x")
    with pytest.raises(DuplicateInputError, match="already been assigned"):
        flow.add_edge(Task(), second, key="x", validate=True)
    with pytest.raises(CycleError):
        flow.add_edge(second, first, validate=True)
    with pytest.raises(TaskBindError, match="cannot take input 'nope'"):
        flow.add_edge(Task(), second, key="nope", validate=True)
    a, b = Task(), Task()
    with pytest.raises(CycleError):
        Flow("cyclic", edges=[Edge(a, b), Edge(b, a)], validate=True)
    assert Flow("cyclic-later", edges=[Edge(a, b), Edge(b, a)], validate=False)


def test_asking_about_a_task_that_is_not_in_the_flow_is_an_error():
    from plait.tasks import Task

    flow = Flow("empty")
    stranger = Task(name="stranger")
    for ask in (flow.edges_to, flow.edges_from, flow.upstream_tasks, flow.downstream_tasks):
        with pytest.raises(ValueError, match=r"stranger.* was not found in Flow 'empty'"):
            ask(stranger)
    alone = flow.add_task(Task())
    assert flow.edges_to(alone) == set() and flow.upstream_tasks(alone) == set()


def test_a_parameter_cannot_be_downstream_of_a_task():
    from plait.tasks import Task

    with pytest.raises(ValueError, match="can not have upstream dependencies"):
        Flow("p").add_edge(Task(), Parameter("p"))


def test_sorted_tasks_is_a_tuple_and_can_start_from_some_tasks():
    from plait.tasks import Task

    flow = Flow("line")
    t1, t2, t3, t4 = (Task(name=str(i)) for i in range(4))
    flow.chain(t1, t2, t3)
    flow.add_edge(t2, t4)
    assert flow.sorted_tasks() == (t1, t2, t3, t4) or flow.sorted_tasks() == (t1, t2, t4, t3)
    assert set(flow.sorted_tasks(root_tasks=[t2])) == {t2, t3, t4}
    assert flow.sorted_tasks(root_tasks=[]) == flow.sorted_tasks()
    with pytest.raises(ValueError, match="not found in Flow"):
        flow.sorted_tasks(root_tasks=[Task()])


def test_get_tasks_by_type_slugs_and_logger():
    from plait.tasks import Constant, Task

    flow = Flow("kinds", tasks=[Task(name="a"), Constant(1, name="c")])
    assert [t.name for t in flow.get_tasks(task_type=Constant)] == ["c"]
    assert sorted(flow.slugs.values()) == ["a", "c"]
    flow.logger.info("a flow's logger")


def test_update_can_merge_parameters_of_the_same_name():
    with Flow("add") as adder:
        n = Parameter("n", default=1)
        total = add(n)
    with Flow("double") as doubler:
        n2 = Parameter("n", default=5)
        twice = add(n2, 10)
    with pytest.raises(ParameterError, match="already has a parameter named 'n'"):
        adder.copy().update(doubler)
    adder.update(doubler, merge_parameters=True)
    assert [p.name for p in adder.parameters()] == ["n"]
    state = adder.run(parameters={"n": 3})
    assert state.result[total].result == 3 and state.result[twice].result == 13
