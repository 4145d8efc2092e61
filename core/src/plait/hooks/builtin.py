"""The core's built-in plugin: Plait's own executors, result types, storage and agent kinds, offered
through the same hooks as any installed plugin's, so there is one way to find them."""

from __future__ import annotations

from typing import Any

from plait.hooks.markers import hookimpl


@hookimpl(trylast=True)
def plait_register_executors() -> dict[str, Any]:
    from plait.engine.executors import LocalExecutor, ProcessExecutor, ThreadExecutor

    return {
        LocalExecutor.name: LocalExecutor,
        ThreadExecutor.name: ThreadExecutor,
        ProcessExecutor.name: ProcessExecutor,
    }


@hookimpl(trylast=True)
def plait_register_result_types() -> dict[str, Any]:
    from plait.results import LocalResult

    return {"file": LocalResult}


@hookimpl(trylast=True)
def plait_register_storage() -> dict[str, Any]:
    from plait.storage import FileStorage, ModuleStorage

    return {FileStorage.type: FileStorage, ModuleStorage.type: ModuleStorage}


@hookimpl(trylast=True)
def plait_register_agents() -> dict[str, Any]:
    from plait.agents import LocalAgent

    return {LocalAgent.type: LocalAgent}
