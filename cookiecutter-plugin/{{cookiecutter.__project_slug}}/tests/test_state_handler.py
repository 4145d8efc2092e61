import logging

import plait


@plait.task
def boom():
    raise ValueError("no luck")


def test_a_failed_task_is_reported(plait_run, caplog):
    with plait.Flow("failing") as flow:
        boom()
    with caplog.at_level(logging.WARNING, logger="{{ cookiecutter.__module_name }}"):
        run = plait_run(flow)
    assert run.state.is_failed()
    assert ("boom", "Running", "Failed") in run.task_changes()
    notices = [r.getMessage() for r in caplog.records if r.name == "{{ cookiecutter.__module_name }}"]
    assert len(notices) == 1
    assert "task boom failed" in notices[0]
