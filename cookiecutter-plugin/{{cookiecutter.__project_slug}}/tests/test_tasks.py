import plait

from {{ cookiecutter.__module_name }}.tasks import greet


def test_greet_runs_in_a_flow(plait_run):
    with plait.Flow("hello") as flow:
        message = greet("Ada")
    run = plait_run(flow)
    assert run.state.is_successful()
    assert run.state.result[message].result == "Hello, Ada!"


def test_greet_is_in_the_task_library(plait_hooks):
    assert ("{{ cookiecutter.__module_name }}.plugin", greet) in plait_hooks.register_tasks()
