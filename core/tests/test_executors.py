"""plait/engine/executors.py: the executor interface, the built-ins, and choosing one."""

from __future__ import annotations

import os
import threading

import pytest

from plait import Flow, task
from plait.engine.executors import (
    Executor,
    LocalExecutor,
    ProcessExecutor,
    ThreadExecutor,
    available_executors,
    get_executor,
)
from plait.errors import ExecutorError


@task
def where():
    return os.getpid(), threading.current_thread().name


def test_get_executor_by_name_instance_or_none():
    assert isinstance(get_executor("local"), LocalExecutor)
    assert isinstance(get_executor("threads"), ThreadExecutor)
    assert isinstance(get_executor("processes"), ProcessExecutor)
    assert isinstance(get_executor(None), LocalExecutor)
    mine = ThreadExecutor(2)
    assert get_executor(mine) is mine
    assert get_executor("threads", max_workers=3).max_workers == 3
    assert set(available_executors()) >= {"local", "threads", "processes"}  # plugins may add more


def test_unknown_executor_name_lists_known_ones():
    known = r"known executors: (.*, )?local, processes, threads"  # and those of installed plugins
    with pytest.raises(ExecutorError, match=rf"Unknown executor 'warp'; {known}"):
        get_executor("warp")
    with Flow("f") as flow:
        where()
    with pytest.raises(ExecutorError, match="Unknown executor 'gpu'"):
        flow.run(executor="gpu")


def test_bad_executor_options():
    with pytest.raises(ExecutorError, match=r"ThreadExecutor: max_workers must be a positive integer, got 0"):
        ThreadExecutor(max_workers=0)
    with pytest.raises(ExecutorError, match=r"got '4'"):
        ThreadExecutor(max_workers="4")
    with pytest.raises(ExecutorError, match=r"ProcessExecutor: max_workers must be a positive integer, got -1"):
        ProcessExecutor(max_workers=-1)
    with pytest.raises(ExecutorError, match="does not take these options"):
        get_executor("local", max_workers=2)
    with pytest.raises(ExecutorError, match="executor must be an Executor or a name, got int"):
        get_executor(3)


def test_submit_outside_start_is_refused():
    with pytest.raises(ExecutorError, match=r"ThreadExecutor.submit\(\) called outside `with executor.start\(\):`"):
        ThreadExecutor().submit(print)
    with pytest.raises(ExecutorError, match=r"ProcessExecutor\.submit"):
        ProcessExecutor().submit(print)


@pytest.mark.parametrize("executor", [LocalExecutor(), ThreadExecutor(2), ProcessExecutor(1)], ids=repr)
def test_interface_submit_and_wait(executor):
    with executor.start() as running:
        assert running is executor
        one = executor.submit(pow, 2, 10)
        many = [executor.submit(divmod, 7, k) for k in (2, 3)]
        failing = executor.submit(int, "x")
        assert executor.wait(one) == 1024
        assert executor.wait(many) == [(3, 1), (2, 1)]
        done = []
        one.add_done_callback(done.append)
        assert done == [one]
        with pytest.raises(ValueError):
            failing.result()


def test_where_task_runs_runs_per_executor():
    with Flow("where") as flow:
        w = where()
    local_pid, local_thread = flow.run(executor="local").result[w].result
    assert local_pid == os.getpid() and local_thread == threading.current_thread().name
    thread_pid, thread_name = flow.run(executor="threads").result[w].result
    assert thread_pid == os.getpid() and thread_name.startswith("plait-worker")
    proc_pid, _ = flow.run(executor=ProcessExecutor(1)).result[w].result
    assert proc_pid != os.getpid()


def test_executor_class_attributes():
    assert LocalExecutor.synchronous and LocalExecutor.in_process
    assert not ThreadExecutor.synchronous and ThreadExecutor.in_process
    assert not ProcessExecutor.synchronous and not ProcessExecutor.in_process
    assert issubclass(LocalExecutor, Executor)


class BrokenPool(Executor):
    """An executor whose futures fail: the task run must end Failed, naming the executor."""

    name = "broken"

    def submit(self, fn, /, *args, **kwargs):
        import concurrent.futures as cf

        future = cf.Future()
        future.set_exception(ConnectionError("worker lost"))
        return future


def test_a_failing_executor_fails_the_task_run():
    with Flow("f") as flow:
        w = where()
    state = flow.run(executor=BrokenPool())
    final = state.result[w]
    assert final.is_failed()
    assert "could not complete on executor" in final.message and "worker lost" in final.message


@task
def make_lock():
    return threading.Lock()


def test_unpicklable_result_on_processes_fails_clearly_and_closures_run():
    @task
    def local_task():
        return 1

    with Flow("f") as flow:
        result_fails = make_lock()
        closure = local_task()
    state = flow.run(executor=ProcessExecutor(1))
    failed = state.result[result_fails]
    assert failed.is_failed()
    assert "The task's result (lock) cannot be pickled to send it back from the worker process" in failed.message
    # a task defined inside a function travels with cloudpickle
    assert state.result[closure].result == 1


def test_thread_executor_runs_tasks_concurrently():
    both_running = threading.Barrier(2, timeout=10)

    @task
    def meet(x):
        both_running.wait()
        return x

    with Flow("f") as flow:
        out = meet.map([1, 2])
    assert flow.run(executor=ThreadExecutor(max_workers=2)).result[out].result == [1, 2]
