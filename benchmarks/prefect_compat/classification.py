"""Which Prefect 1 test cases apply to Plait, and why the others do not.

A case applies when it exercises what a Prefect 1 user writes in flows and in their own tests:
tasks, flows, parameters, states, signals, triggers, mapping, control flow, schedules, the run
context, results as values, state handlers, ``flow.run``, ``FlowRunner(flow).run`` and
``TaskRunner(task).run``. It does not apply when it tests a part of Prefect 1 that Plait does
not have and does not claim; ``NOT_APPLICABLE`` lists those cases (``fnmatch`` patterns over
the pytest node ids, relative to Prefect's ``tests/`` folder), each with its reason.

A failure of an applicable case is a *missing API* when the test reached a Prefect name Plait
lacks (``shim.MissingPrefectAPI``) or called a Plait name with arguments it does not take, and a
*behaviour* difference otherwise (Plait has the API and does something else).
"""

from __future__ import annotations

import fnmatch
import re

CLOUD = (
    "Prefect Cloud/Server: registration, agents, storage, run configs, environments, diagnostics "
    "(Plait's orchestration service is plait-server, with its own API)"
)
SERIAL = (
    "Prefect's serialization schemas and formats (TaskSchema, FlowSchema, StateSchema, ClockSchema, "
    "obj.serialize(), serialized_hash); Plait's flow.serialize() has its own format"
)
CONFIG = (
    "Prefect's configuration system (prefect.config, set_temporary_config, defaults read from it); "
    "Plait's configuration is its own (~/.plait/config.toml, PLAIT__ variables)"
)
SECRETS = (
    "secrets read from prefect.context['secrets'] (Prefect's local-secrets mode); Plait's secrets "
    "come from the environment or [secrets] in its configuration"
)
INTERNALS = (
    "internals of Prefect's runners: the step methods of FlowRunner/TaskRunner (initialize_run, "
    "check_*, get_*_run_state, cache_result...), mapped-parent plumbing, runner classes, the Flow's "
    "private cache, hashed inputs; Plait's runner is built differently"
)
EXECUTOR = "executor internals: Prefect's Executor.submit protocol, Dask futures, keys and pickling errors"
RESULT_OBJ = (
    "Prefect's Result wrapper objects (state._result, NoResult, Result(value=...), load_result, "
    "PrefectResult); Plait keeps results as plain values (docs/coming-from-prefect.md)"
)
CLOUD_STATE = (
    "state metadata Prefect kept for its Cloud API: state.context, cached_inputs on every state, "
    "meta states (Queued, Submitted as a wrapper, ClientFailed), UI colours"
)
NAMES = "asserts a 'prefect' name (a logger named prefect.*, a class name in a repr); under Plait the names are plait's"
UTILITIES = (
    "prefect.utilities.collections: Prefect's internal helpers (DotDict, merge_dicts, flatten_seq, "
    "GraphQLResult); Plait has no such module"
)
UI = "auto_generated: a flag for Prefect's UI"
PYTEST = "uses pytest.warns(None), which pytest removed in version 8: the test cannot run on a current pytest"

NOT_APPLICABLE: list[tuple[str, str]] = [
    # --- core/test_flow.py
    ("core/test_flow.py::TestCreateFlow::test_create_flow_with_storage*", CLOUD),
    ("core/test_flow.py::TestCreateFlow::test_create_flow_with_environment", CLOUD),
    ("core/test_flow.py::TestFlowRegister::*", CLOUD),
    ("core/test_flow.py::TestFlowDiagnostics::*", CLOUD),
    ("core/test_flow.py::test_run_agent_passes_flow_labels*", CLOUD),
    ("core/test_flow.py::TestSerialize::test_deserialization", SERIAL),
    ("core/test_flow.py::TestSerialize::test_serialize_includes_storage", CLOUD),
    ("core/test_flow.py::TestSerialize::test_serialize_adds_flow_to_storage_if_build", CLOUD),
    ("core/test_flow.py::TestSerialize::test_serialize_can_be_called_twice", CLOUD),
    ("core/test_flow.py::TestSerialize::test_serialize_fails_with_no_storage", CLOUD),
    ("core/test_flow.py::TestSerializedHash::*", SERIAL),
    ("core/test_flow.py::test_eager_cycle_detection_defaults_false", CONFIG),
    ("core/test_flow.py::test_eager_validation_is_off_by_default", CONFIG),
    ("core/test_flow.py::test_eager_cycle_detection_works", CONFIG),
    ("core/test_flow.py::test_validate_edges", CONFIG),
    ("core/test_flow.py::TestFlowRunMethod::test_flow_dot_run_responds_to_config", CONFIG),
    ("core/test_flow.py::TestSaveLoad::test_save_saves_has_a_default", CONFIG),
    ("core/test_flow.py::TestSaveLoad::test_load_accepts_name_and_sluggified_name", CONFIG),
    ("core/test_flow.py::test_results_write_to_formatted_locations", CONFIG),
    ("core/test_flow.py::test_results_write_to_custom_formatters", CONFIG),
    ("core/test_flow.py::TestCache::*", INTERNALS),
    ("core/test_flow.py::test_bad_flow_runner_code_still_returns_state_obj", INTERNALS),
    ("core/test_flow.py::TestCreateFlow::test_flow_has_logger*", NAMES),
    ("core/test_flow.py::TestCreateFlow::test_create_flow_auto_generates_tasks", UI),
    # --- core/test_task.py
    ("core/test_task.py::TestCreateTask::test_create_task_is_not_auto_generated", UI),
    ("core/test_task.py::TestCreateTask::test_create_task_with_max_retries", CONFIG),
    ("core/test_task.py::TestCreateTask::test_create_task_with_retry_delay", CONFIG),
    ("core/test_task.py::TestCreateTask::test_create_task_with_max_retry_override_to_0", CONFIG),
    ("core/test_task.py::TestCreateTask::test_create_task_with_timeout", CONFIG),
    ("core/test_task.py::TestCreateTask::test_create_task_with_and_without_result", RESULT_OBJ),
    ("core/test_task.py::TestCreateTask::test_create_parameter_uses_prefect_result", RESULT_OBJ),
    ("core/test_task.py::TestSerialization::*", SERIAL),
    # --- core/test_edge.py
    ("core/test_edge.py::test_serialize_edge", SERIAL),
    # --- core/test_task_map.py
    ("core/test_task_map.py::test_map_skips_dont_leak_out*", RESULT_OBJ),
    ("core/test_task_map.py::test_mapped_retries_regenerate_child_pipelines", RESULT_OBJ),
    # --- engine/test_flow_runner.py
    ("engine/test_flow_runner.py::test_flow_runner_has_logger", NAMES),
    ("engine/test_flow_runner.py::test_secrets_*", SECRETS),
    ("engine/test_flow_runner.py::TestCheckFlowPendingOrRunning::*", INTERNALS),
    ("engine/test_flow_runner.py::TestCheckScheduledStep::*", INTERNALS),
    ("engine/test_flow_runner.py::TestSetFlowToRunning::*", INTERNALS),
    ("engine/test_flow_runner.py::TestRunFlowStep::*", INTERNALS),
    ("engine/test_flow_runner.py::TestInitializeRun::*", INTERNALS),
    ("engine/test_flow_runner.py::test_all_pipeline_method_steps_are_called", INTERNALS),
    ("engine/test_flow_runner.py::test_endrun_raised_in_initialize_is_caught_correctly", INTERNALS),
    ("engine/test_flow_runner.py::TestFlowStateHandlers::test_*_even_when_initialize_run_fails", INTERNALS),
    ("engine/test_flow_runner.py::test_task_runner_cls_uses_default_function_if_none", INTERNALS),
    ("engine/test_flow_runner.py::test_flow_run_uses_default_flow_runner", CONFIG),
    ("engine/test_flow_runner.py::test_flow_runner_captures_and_exposes_dask_errors*", EXECUTOR),
    ("engine/test_flow_runner.py::test_flow_runner_allows_for_parallelism_with_times*", EXECUTOR),
    ("engine/test_flow_runner.py::test_dask_executor_with_flow_runner_sets_task_keys", EXECUTOR),
    ("engine/test_flow_runner.py::test_constant_tasks_arent_submitted*", EXECUTOR),
    # --- engine/test_task_runner.py
    ("engine/test_task_runner.py::test_task_runner_has_logger", NAMES),
    ("engine/test_task_runner.py::test_task_runner_handles_secrets", SECRETS),
    ("engine/test_task_runner.py::test_runner_checks_hashed_inputs_correctly", INTERNALS),
    ("engine/test_task_runner.py::TestContext::*", INTERNALS),
    ("engine/test_task_runner.py::TestInitializeRun::*", INTERNALS),
    ("engine/test_task_runner.py::TestCheckUpstreamFinished::*", INTERNALS),
    ("engine/test_task_runner.py::TestCheckUpstreamSkipped::*", INTERNALS),
    ("engine/test_task_runner.py::TestCheckTaskTrigger::*", INTERNALS),
    ("engine/test_task_runner.py::TestCheckTaskReady::*", INTERNALS),
    ("engine/test_task_runner.py::TestGetTaskInputs::*", INTERNALS),
    ("engine/test_task_runner.py::TestCheckTaskCached::*", INTERNALS),
    ("engine/test_task_runner.py::TestSetTaskRunning::*", INTERNALS),
    ("engine/test_task_runner.py::TestRunTaskStep::*", INTERNALS),
    ("engine/test_task_runner.py::TestCheckRetryStep::*", INTERNALS),
    ("engine/test_task_runner.py::TestCacheResultStep::*", INTERNALS),
    ("engine/test_task_runner.py::TestTargetExistsStep::test_check_target*", INTERNALS),
    ("engine/test_task_runner.py::TestCheckScheduledStep::*", INTERNALS),
    ("engine/test_task_runner.py::TestCheckTaskReadyToMapStep::*", INTERNALS),
    ("engine/test_task_runner.py::TestTaskRunNames::test_task_runner_set_task_name", INTERNALS),
    ("engine/test_task_runner.py::test_task_runner_does_not_raise_on_exception_when_endrun_raised_by_map*", INTERNALS),
    ("engine/test_task_runner.py::TestTaskRunnerStateHandlers::test_*_on_mapped_parent", INTERNALS),
    ("engine/test_task_runner.py::test_task_runner_skips_upstream_check_for_parent_mapped_task", INTERNALS),
    ("engine/test_task_runner.py::test_mapped_tasks_parents_and_children_respond_to_individual_*", INTERNALS),
    ("engine/test_task_runner.py::test_mapped_tasks_parent_regenerates_child_pipeline", INTERNALS),
    ("engine/test_task_runner.py::test_task_runner_logs_map_index_for_mapped_tasks", RESULT_OBJ),
    ("engine/test_task_runner.py::TestLooping::test_looping_checkpoints_all_iterations*", RESULT_OBJ),
    ("engine/test_task_runner.py::test_task_tags_are_attached_to_all_states", CLOUD_STATE),
    # --- engine/test_state.py
    ("engine/test_state.py::TestCreateStates::test_create_state_with_no_args*", RESULT_OBJ),
    ("engine/test_state.py::TestCreateStates::test_create_state_with_kwarg_result_arg*", RESULT_OBJ),
    ("engine/test_state.py::TestCreateStates::test_create_state_with_fully_hydrated_result*", RESULT_OBJ),
    ("engine/test_state.py::TestCreateStates::test_create_state_with_positional_message_arg*", RESULT_OBJ),
    ("engine/test_state.py::TestCreateStates::test_create_state_with_kwarg_cached_inputs*", CLOUD_STATE),
    ("engine/test_state.py::TestCreateStates::test_create_state_with_kwarg_context*", CLOUD_STATE),
    ("engine/test_state.py::TestCreateStates::test_create_state_with_tags_in_context*", CLOUD_STATE),
    ("engine/test_state.py::test_queued_states_*", CLOUD_STATE),
    ("engine/test_state.py::test_only_scheduled_states_have_task_run_count_in_context*", CLOUD_STATE),
    ("engine/test_state.py::test_states_have_color*", CLOUD_STATE),
    ("engine/test_state.py::test_serialize_*", SERIAL),
    ("engine/test_state.py::test_state_equality", CLOUD_STATE),
    ("engine/test_state.py::test_state_equality_ignores_context", CLOUD_STATE),
    ("engine/test_state.py::test_states_with_mutable_attrs_are_hashable", CLOUD_STATE),
    ("engine/test_state.py::test_state_is_methods[[]state_check2[]]", CLOUD_STATE),  # ClientFailed
    ("engine/test_state.py::test_state_is_methods[[]state_check9[]]", CLOUD_STATE),  # Queued
    ("engine/test_state.py::test_state_is_methods[[]state_check15[]]", CLOUD_STATE),  # Submitted
    ("engine/test_state.py::TestResultInterface::*", RESULT_OBJ),
    ("engine/test_state.py::test_meta_states_dont_nest", CLOUD_STATE),
    # --- engine/test_signals.py
    ("engine/test_signals.py::test_exceptions_are_displayed_with_messages", NAMES),
    # --- schedules/test_clocks.py: the serialize=True halves go through Prefect's ClockSchema
    ("schedules/test_clocks.py::*DaylightSavingsTime::*[[]True[]]", SERIAL),
    # --- utilities
    ("utilities/test_collections.py::*", UTILITIES),
    ("utilities/test_context.py::test_context_doesnt_overwrite_all_config_keys", CONFIG),
    ("utilities/test_context.py::test_context_respects_the_dot_nature_of_config", CONFIG),
    ("utilities/test_context.py::test_context_respects_the_dict_nature_of_non_config_keys", CONFIG),
    ("utilities/test_context.py::test_context_loads_values_from_config", CONFIG),
    ("utilities/test_context.py::test_context_loads_secrets_from_config", CONFIG),
    ("utilities/test_context.py::test_context_contextmanager_prioritizes_new_keys_even_on_*", CONFIG),
    ("utilities/test_context.py::test_context_contextmanager_prioritizes_new_config_keys", CONFIG),
    ("utilities/test_context.py::test_context_init_prioritizes_new_config_keys*", CONFIG),
]

# Errors that say the case cannot run on a current pytest, whatever Plait does.
_HARNESS_ERRORS = re.compile(r"exceptions must be derived from Warning, not <class 'NoneType'>")

_MISSING_ERRORS = re.compile(
    r"MissingPrefectAPI|has no attribute|cannot import name|No module named|unexpected keyword argument"
    r"|takes \d+ positional argument|got multiple values for argument|missing \d+ required"
    r"|module does not import"
)


def not_applicable(nodeid: str, record: dict | None = None) -> str | None:
    """The reason ``nodeid`` does not apply to Plait, or ``None`` when it does."""
    for pattern, reason in NOT_APPLICABLE:
        if fnmatch.fnmatchcase(nodeid, pattern):
            return reason
    if record is not None and _HARNESS_ERRORS.search(record.get("error", "")):
        return PYTEST
    return None


def failure_kind(nodeid: str, record: dict) -> str:
    """``"missing"`` (a Prefect API Plait lacks) or ``"behaviour"`` for a failed applicable case."""
    if record.get("missing"):
        return "missing"
    if _MISSING_ERRORS.search(record.get("error", "")):
        return "missing"
    return "behaviour"
