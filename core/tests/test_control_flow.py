"""Control flow: case/switch/ifelse/merge, apply_map, LOOP, PAUSE and resume, flow terminal state."""

from __future__ import annotations

import pytest

import plait
from plait import Flow, Parameter, signals, task, triggers
from plait.control_flow import apply_map, case, ifelse, merge, pause_task, switch
from plait.errors import FlowRunError, TaskBindError
from plait.states import Failed, Paused, Skipped, Success
from plait.tasks import unmapped


@task
def identity(x):
    return x


@task
def inc(x):
    return x + 1


@task
def double(x):
    return 2 * x


@task
def is_even(x):
    return x % 2 == 0


def by_name(state, name):
    found = [s for t, s in state.result.items() if t.name == name]
    assert len(found) == 1, f"{len(found)} tasks named {name!r}"
    return found[0]


# --- case / merge ---------------------------------------------------------------------------------


def test_case_runs_the_matching_branch_and_skips_the_other():
    ran = []

    @task
    def branch(label):
        ran.append(label)
        return label

    with Flow("case") as flow:
        env = Parameter("env", default="prod")
        with case(env, "prod"):
            prod = branch("prod")
        with case(env, "staging"):
            staging = branch("staging")
            after_staging = identity(staging)
        result = merge(prod, staging)

    state = flow.run()

    assert ran == ["prod"]
    assert isinstance(state.result[staging], Skipped)
    assert isinstance(state.result[after_staging], Skipped)  # the skip reaches the whole branch
    assert state.result[prod].result == "prod"
    assert state.result[result].result == "prod"
    assert state.is_successful()

    state = flow.run(parameters={"env": "staging"})
    assert ran == ["prod", "staging"]
    assert isinstance(state.result[prod], Skipped)
    assert state.result[result].result == "staging"


def test_task_that_opts_out_of_skip_propagation_runs_after_a_skipped_branch():
    @task(skip_on_upstream_skip=False, trigger=triggers.all_finished)
    def cleanup(value):
        return f"cleaned {value}"

    with Flow("case-cleanup") as flow:
        with case(Parameter("go", default=False), True):
            work = identity("done")
        tidy = cleanup(work)

    state = flow.run()
    assert isinstance(state.result[work], Skipped)
    assert state.result[tidy].result == "cleaned None"


def test_nested_cases_skip_the_inner_branch_when_the_outer_is_not_taken():
    with Flow("nested") as flow:
        a = Parameter("a", default=1)
        b = Parameter("b", default=2)
        with case(a, 1):
            outer = identity("outer")
            with case(b, 2):
                inner = identity("inner")

    state = flow.run()
    assert state.result[inner].result == "inner"

    state = flow.run(parameters={"a": 0})
    assert isinstance(state.result[outer], Skipped)
    assert isinstance(state.result[inner], Skipped)

    state = flow.run(parameters={"b": 0})
    assert state.result[outer].result == "outer"
    assert isinstance(state.result[inner], Skipped)


def test_case_condition_failure_fails_the_branch_instead_of_skipping():
    @task
    def broken():
        raise ValueError("no condition")

    with Flow("case-failed") as flow, case(broken(), True):
        work = identity(1)

    state = flow.run()
    assert state.result[work].is_failed()
    assert state.is_failed()


def test_case_works_with_the_imperative_api():
    # Prefect 1's imperative style: no `with Flow` block, tasks bound with flow=
    flow = Flow("imperative-case")
    cond = identity.copy().bind("b", flow=flow)
    with case(cond, "a"):
        a = identity.copy().bind(1, flow=flow)
    with case(cond, "b"):
        b = identity.copy().bind(2, flow=flow)
    state = flow.run()
    assert state.result[a].is_skipped()
    assert state.result[b].result == 2


def test_a_case_block_feeding_two_flows_is_a_clear_error():
    one, two = Flow("one"), Flow("two")
    with pytest.raises(ValueError, match=r"'two'.*'one'"), case(identity, 1):
        identity.copy().bind(1, flow=one)
        identity.copy().bind(2, flow=two)


def test_case_value_must_not_be_a_task():
    with Flow("bad-case"), pytest.raises(TypeError, match="`value` cannot be a task"):
        case(identity(1), identity(2))


def test_the_open_case_block_is_in_the_context():
    with Flow("ctx-case"):
        outer = case(identity(True), True)
        inner = case(identity(1), 1)
        assert "case" not in plait.context
        with outer:
            assert plait.context["case"] is outer
            with inner:
                assert plait.context.case is inner
            assert plait.context["case"] is outer
        assert "case" not in plait.context


def test_merge_of_all_skipped_branches_is_skipped():
    with Flow("merge-skip") as flow:
        cond = Parameter("c", default="x")
        with case(cond, "a"):
            a = identity("a")
        with case(cond, "b"):
            b = identity("b")
        m = merge(a, b)
    state = flow.run()
    assert isinstance(state.result[m], Skipped)


# --- ifelse / switch ---------------------------------------------------------------------------------


def test_ifelse_runs_one_branch_on_the_truth_of_the_condition():
    with Flow("ifelse") as flow:
        flag = Parameter("flag", default=True)
        yes = identity("yes")
        no = identity("no")
        ifelse(flag, yes, no)
        picked = merge(yes, no)

    state = flow.run()
    assert state.result[yes].result == "yes"
    assert isinstance(state.result[no], Skipped)
    assert state.result[picked].result == "yes"

    state = flow.run(parameters={"flag": []})  # falsy, not just False
    assert isinstance(state.result[yes], Skipped)
    assert state.result[picked].result == "no"


def test_switch_picks_the_task_for_the_value():
    with Flow("switch") as flow:
        mode = Parameter("mode", default="b")
        tasks = {m: identity(m) for m in "abc"}
        switch(mode, tasks)

    state = flow.run()
    assert [state.result[tasks[m]].name for m in "abc"] == ["Skipped", "Success", "Skipped"]


# --- apply_map ------------------------------------------------------------------------------------


def test_apply_map_maps_a_whole_subgraph():
    def pipeline(x):
        return double(inc(x))

    with Flow("apply-map") as flow:
        out = apply_map(pipeline, [1, 2, 3])

    state = flow.run()
    assert state.result[out].result == [4, 6, 8]
    assert len(state.result[out].map_states) == 3
    assert not any(t.name.endswith("(item)") for t in flow)  # placeholders are gone


def test_apply_map_with_a_case_branches_per_item():
    def classify(x):
        even = is_even(x)
        with case(even, True):
            big = double(x)
        with case(even, False):
            small = inc(x)
        return merge(big, small)

    with Flow("apply-map-case") as flow:
        out = apply_map(classify, Parameter("xs", default=[1, 2, 3, 4]))

    state = flow.run()

    assert state.result[out].result == [2, 4, 4, 8]
    doubled = by_name(state, "double")
    assert [s.name for s in doubled.map_states] == ["Skipped", "Success", "Skipped", "Success"]


def test_apply_map_passes_unmapped_arguments_whole():
    @task
    def add(x, y):
        return x + y

    with Flow("apply-map-unmapped") as flow:
        offset = Parameter("offset", default=100)
        out = apply_map(lambda x, y: add(x, y), [1, 2], unmapped(offset))

    assert flow.run().result[out].result == [101, 102]


def test_apply_map_needs_something_to_map():
    with Flow("apply-map-bad"), pytest.raises(TaskBindError, match="not iterable"):
        apply_map(lambda x: inc(x), 5)


# --- LOOP ----------------------------------------------------------------------------------------------


def test_loop_runs_exactly_n_times_and_sees_its_payload():
    runs = []

    @task
    def fib(n):
        payload = plait.context.get("task_loop_result", {"a": 0, "b": 1, "i": 0})
        runs.append((plait.context.task_loop_count, payload["i"]))
        if payload["i"] < n:
            a, b = payload["b"], payload["a"] + payload["b"]
            raise signals.LOOP(f"step {payload['i']}", result={"a": a, "b": b, "i": payload["i"] + 1})
        return payload["a"]

    with Flow("loop") as flow:
        f = fib(10)

    state = flow.run()

    assert state.result[f].result == 55
    assert len(runs) == 11  # the first run and 10 loops
    assert runs[0] == (1, 0)
    assert runs[-1] == (11, 10)


def test_loop_ends_with_the_state_of_the_last_iteration():
    @task
    def flaky():
        if plait.context.task_loop_count < 3:
            raise signals.LOOP(result=plait.context.task_loop_count)
        raise ValueError("third time unlucky")

    with Flow("loop-fail") as flow:
        f = flaky()

    state = flow.run()
    assert isinstance(state.result[f], Failed)
    assert "third time unlucky" in state.result[f].message


# --- PAUSE and resume ------------------------------------------------------------------------------


def test_pause_stops_the_run_and_resume_continues_without_rerunning_upstream():
    calls = []

    @task
    def extract():
        calls.append("extract")
        return [1, 2, 3]

    @task
    def approve(rows):
        calls.append("approve")
        pause_task("waiting for approval")
        return rows

    @task
    def load(rows):
        calls.append("load")
        return sum(rows)

    with Flow("approval") as flow:
        rows = extract()
        ok = approve(rows)
        total = load(ok)

    first = flow.run()

    assert isinstance(first, Paused)
    assert isinstance(first.result[ok], Paused)
    assert first.result[ok].message == "waiting for approval"
    assert first.result[total].is_pending()
    assert calls == ["extract", "approve"]

    second = flow.run(resume_from=first, resume=[ok])

    assert second.is_successful()
    assert second.result[total].result == 6
    assert calls == ["extract", "approve", "approve", "load"]  # extract kept its result
    assert second.result[rows] is first.result[rows]


def test_signal_pause_and_manual_only_resume_by_name():
    @task(trigger=triggers.manual_only)
    def publish(x):
        return f"published {x}"

    with Flow("manual") as flow:
        p = publish(identity(1))

    first = flow.run()
    assert isinstance(first.result[p], Paused)

    second = flow.run(resume_from=first, resume=["publish"])
    assert second.result[p].result == "published 1"

    # resume alone lets a manual_only task through on a fresh run
    assert flow.run(resume="publish").result[p].result == "published 1"


def test_resume_from_a_failed_run_reruns_only_what_failed():
    calls = []
    attempts = {"n": 0}

    @task
    def stable():
        calls.append("stable")
        return 1

    @task
    def flaky(x):
        calls.append("flaky")
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise RuntimeError("transient")
        return x + 1

    with Flow("restart") as flow:
        out = flaky(stable())

    first = flow.run()
    assert first.is_failed()
    second = flow.run(resume_from=first)
    assert second.is_successful()
    assert second.result[out].result == 2
    assert calls == ["stable", "flaky", "flaky"]


def test_resume_of_an_unknown_task_is_a_clear_error():
    with Flow("resume-bad") as flow:
        identity(1)
    with pytest.raises(FlowRunError, match="no task named 'nope'"):
        flow.run(resume=["nope"])
    with pytest.raises(FlowRunError, match="resume_from"):
        flow.run(resume_from=42)


# --- the flow's own state ----------------------------------------------------------------------------


def test_terminal_state_handler_can_replace_the_final_state():
    seen = {}

    def handler(flow, state, task_states):
        seen["flow"] = flow.name
        seen["state"] = state.name
        seen["tasks"] = sorted(t.name for t in task_states)
        if state.is_failed():
            return Success("Failures are acceptable in this flow.", result=state.result)
        return None

    @task
    def boom():
        raise RuntimeError("boom")

    with Flow("terminal", terminal_state_handler=handler) as flow:
        boom()
        identity(1)

    state = flow.run()

    assert seen == {"flow": "terminal", "state": "Failed", "tasks": ["boom", "identity"]}
    assert isinstance(state, Success)
    assert state.message == "Failures are acceptable in this flow."


def test_terminal_state_handler_that_raises_fails_the_flow():
    def handler(flow, state, task_states):
        raise RuntimeError("handler broke")

    with Flow("terminal-raises", terminal_state_handler=handler) as flow:
        identity(1)

    state = flow.run()
    assert isinstance(state, Failed)
    assert "handler broke" in state.message


def test_reference_tasks_decide_the_flow_state():
    @task
    def boom():
        raise RuntimeError("boom")

    with Flow("reference") as flow:
        ok = identity(1)
        bad = boom()

    assert flow.run().is_failed()

    flow.set_reference_tasks([ok])
    assert flow.run().is_successful()

    flow.set_reference_tasks([bad])
    assert flow.run().is_failed()


def test_resume_of_a_mapped_task_reruns_only_the_children_left():
    calls = []

    @task
    def review(x):
        calls.append(("review", x))
        if x % 2:
            pause_task(f"item {x} needs a look")
        return x

    @task
    def publish(x):
        calls.append(("publish", x))
        return x * 10

    with Flow("mapped-resume") as flow:
        reviewed = review.map([1, 2, 3, 4])
        published = publish.map(reviewed)

    first = flow.run()
    assert isinstance(first, Paused)
    assert [s.name for s in first.result[reviewed].map_states] == ["Paused", "Success", "Paused", "Success"]
    assert sorted(c for c in calls if c[0] == "publish") == [("publish", 2), ("publish", 4)]
    calls.clear()

    second = flow.run(resume_from=first, resume=[reviewed])

    assert second.is_successful()
    assert second.result[published].result == [10, 20, 30, 40]
    # only the paused children ran again, and only their downstream children
    assert sorted(calls) == [("publish", 1), ("publish", 3), ("review", 1), ("review", 3)]


def test_resume_from_matches_tasks_of_another_copy_of_the_flow_by_slug():
    calls = []

    @task
    def step(x):
        calls.append(x)
        return x

    def build():
        with Flow("rebuilt") as flow:
            first = step(1)
            gate = identity(first, task_args={"trigger": triggers.manual_only})
            step(gate)
        return flow

    old = build().run()
    assert isinstance(old, Paused) and calls == [1]

    state = build().run(resume_from={t.slug: s for t, s in old.result.items()}, resume=["identity"])
    assert state.is_successful()
    assert calls == [1, 1]  # only the step after the gate ran; the first one was kept


# --- Prefect 1's control-flow tasks --------------------------------------------------------------


def test_filter_task_drops_skipped_and_failed_children_by_default():
    from plait.control_flow import FilterTask

    @task
    def check(x):
        if x == 2:
            raise ValueError("two")
        if x == 3:
            raise signals.SKIP("three")
        return x

    with Flow("filter") as flow:
        checked = check.map([1, 2, 3, 4])
        kept = FilterTask()(checked)
        evens = FilterTask(filter_func=lambda r: isinstance(r, int) and r % 2 == 0)(checked)
    state = flow.run()
    assert state.result[kept].result == [1, 4]
    assert state.result[evens].result == [4]
    assert FilterTask().trigger is triggers.all_finished and FilterTask().skip_on_upstream_skip is False


def test_filter_task_can_log_what_it_kept(caplog):
    from plait.control_flow import FilterTask

    FilterTask(log_func=lambda kept: f"kept {len(kept)} of them").run([1, None, 3])
    assert "kept 2 of them" in caplog.text


def test_merge_after_a_mapped_switch_merges_child_by_child():
    @task
    def pick(x):
        return x

    with Flow("mapped-merge") as flow:
        cond = pick.map(["a", "b", "a"])
        a = identity("A")
        b = identity("B")
        switch(cond, {"a": a, "b": b}, mapped=True)
        out = merge(a, b, mapped=True)
    assert flow.run().result[out].result == ["A", "B", "A"]


def test_merge_refuses_to_skip_with_its_upstream_and_is_skipped_with_no_result():
    from plait.control_flow import Merge

    with pytest.raises(ValueError, match="skip_on_upstream_skip=False"):
        Merge(skip_on_upstream_skip=True)

    @task
    def nothing():
        raise signals.SKIP("not today")

    with Flow("all-skipped") as flow:
        out = merge(nothing(), nothing())
    state = flow.run().result[out]
    assert state.is_skipped() and state.result is None


def test_a_branch_can_be_a_list_of_tasks():
    from plait.tasks import List

    with Flow("list-branch") as flow:
        cond = identity(False)
        both = [identity(1), identity(2)]
        other = identity(3)
        ifelse(cond, both, other)
    state = flow.run()
    gathered = next(t for t in flow if isinstance(t, List))
    assert state.result[gathered].is_skipped()
    assert state.result[other].result == 3
