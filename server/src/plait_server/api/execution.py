"""A faster executor for the schema: variables coerced by compiled coercers, and plain scalar
fields completed without graphql-core's per-field machinery.

graphql-core completes every field of every object the same way: a path segment, a resolve
info, the resolver, then ``complete_value`` through the non-null, list and leaf checks. For a
field that is just an attribute of a dataclass (most fields of our types: ``id``, ``state``,
``version``...), that is a dozen calls to return ``getattr(obj, name)`` serialized. A batched
write's answer is 100 outcomes of 5 such fields, a page of task runs 100 runs of 13: most of the
server's time per call went there.

``FastExecutor.execute_fields`` takes a shortcut for the fields that strawberry itself resolves
with its default resolver (no resolver function, no field extensions, no arguments) and whose
type is a scalar or an enum: it reads the attribute and serializes it with the type's own
``serialize``, exactly what the stock path does. Anything else, and anything unusual on the way
(``None`` in a non-null field, an attribute that raises, a value the scalar refuses), goes
through graphql-core's own ``execute_field``, which produces the usual value or error. The
answers are the same, field for field, in the same order (``tests/test_execution.py`` runs
documents through both executors and compares them).

The variables get the same treatment. graphql-core coerces a variable's value by walking its
type for every value (is it non-null? a list? an input object?); a batch of 100 states is some
1,400 such steps before the first resolver runs. ``FastExecutor.build`` coerces with a function
compiled once per input type that does only what that type needs, with graphql-core's own
rules (its scalars' ``coerce_input_value``, its memoized field defaults, ``out_type``). Values
it is not sure about (a missing variable, a non-list where a list is expected, anything it
refuses) go through graphql-core's ``get_variable_values``, which coerces them or reports the
errors exactly as before; so do documents with several operations or fragment variables.

Both shortcuts need graphql-core 3.3's ``Executor`` (``SUPPORTED``); with another version the
schema runs on strawberry's stock executor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    GRAPHQL_MAX_INT,
    GRAPHQL_MIN_INT,
    FragmentDefinitionNode,
    GraphQLBoolean,
    GraphQLField,
    GraphQLID,
    GraphQLInputObjectType,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
    OperationDefinitionNode,
    Undefined,
    is_leaf_type,
    is_non_null_type,
    is_required_input_field,
)
from graphql.execution import MiddlewareManager, default_field_resolver, default_type_resolver
from graphql.execution.collect_fields import FragmentDetails
from graphql.execution.get_variable_signature import get_variable_signature
from graphql.execution.values import VariableValues, VariableValueSource
from graphql.pyutils import Path, gather_with_cancel
from graphql.type import assert_valid_schema
from graphql.utilities.coerce_input_value import coerce_default_value
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

__all__ = ["FastExecutor", "executor_class"]

_DEFINITION = "strawberry-definition"

#: A leaf field's shortcut: (attribute name, the type's serialize, non-null).
Leaf = tuple[str, Callable[[Any], Any], bool]


def _default_attribute(field: GraphQLField) -> tuple[str, Any, bool] | None:
    """``(attribute name, type without its non-null wrapper, non-null)`` for a field strawberry
    resolves by reading an attribute (no arguments, resolver or extension), else ``None``."""
    resolve = field.resolve
    if resolve is None or not getattr(resolve, "_is_default", False) or field.args:
        return None
    definition = (field.extensions or {}).get(_DEFINITION)
    if definition is None or definition.base_resolver is not None or definition.extensions:
        return None
    if getattr(definition, "default_resolver", None) is not getattr:
        return None
    kind = field.type
    non_null = is_non_null_type(kind)
    return definition.python_name, kind.of_type if non_null else kind, non_null  # type: ignore[union-attr]


def _leaf(field: GraphQLField) -> Leaf | None:
    """The shortcut for ``field``, or ``None`` when it must go through graphql-core."""
    attribute = _default_attribute(field)
    if attribute is None or not is_leaf_type(attribute[1]):
        return None
    name, kind, non_null = attribute
    return name, kind.serialize, non_null


#: A field holding another object: (attribute name, the object type, non-null).
Nested = tuple[str, GraphQLObjectType, bool]


def _nested_object(field: GraphQLField) -> Nested | None:
    """For a default-resolved field of an object type (no list): how to read it."""
    attribute = _default_attribute(field)
    if attribute is None:
        return None
    name, kind, non_null = attribute
    if not isinstance(kind, GraphQLObjectType) or kind.is_type_of is not None:
        return None
    return name, kind, non_null


class _Fallback(Exception):
    """A list of objects the shortcut cannot complete: graphql-core completes it."""


# --- variables -------------------------------------------------------------------------------------


class _Slow(Exception):
    """Raised by a compiled coercer: this value is for graphql-core's own coercion."""


#: Input types nested deeper than this are left to graphql-core (which bounds nesting itself).
_MAX_DEPTH = 50

Coercer = Callable[[Any], Any]


def _compile(type_: Any, depth: int = 0, visiting: frozenset[str] = frozenset()) -> Coercer | None:
    """A coercer for ``type_`` (nullable or not), or ``None`` when graphql-core must do it."""
    if depth > _MAX_DEPTH:
        return None
    non_null = isinstance(type_, GraphQLNonNull)
    named = type_.of_type if non_null else type_
    if is_leaf_type(named):
        return _compile_leaf(named, non_null)
    inner = _compile_value(named, depth, visiting)
    if inner is None:
        return None
    if non_null:

        def non_null_value(value: Any) -> Any:
            if value is None or value is Undefined:
                raise _Slow
            return inner(value)

        return non_null_value

    def nullable(value: Any) -> Any:
        if value is Undefined:
            raise _Slow
        return None if value is None else inner(value)

    return nullable


#: Built-in scalars whose input is taken as it is when it has exactly this Python type (what
#: their ``coerce_input_value`` returns unchanged); any other value goes through it.
_EXACT = {GraphQLString: str, GraphQLID: str, GraphQLBoolean: bool}


def _compile_leaf(type_: Any, non_null: bool) -> Coercer:
    parse = type_.coerce_input_value
    exact = _EXACT.get(type_)
    is_int = type_ is GraphQLInt

    def coerce_leaf(value: Any) -> Any:
        kind = type(value)
        if kind is exact or (is_int and kind is int and GRAPHQL_MIN_INT <= value <= GRAPHQL_MAX_INT):
            return value
        if value is None:
            if non_null:
                raise _Slow
            return None
        if value is Undefined:
            raise _Slow
        try:
            coerced = parse(value)
        except Exception:
            raise _Slow from None
        if coerced is Undefined:
            raise _Slow
        return coerced

    return coerce_leaf


def _compile_value(type_: Any, depth: int, visiting: frozenset[str]) -> Coercer | None:
    """A coercer for a value (not ``None``) of the nullable, non-leaf type ``type_``."""
    if isinstance(type_, GraphQLList):
        item = _compile(type_.of_type, depth + 1, visiting)
        if item is None:
            return None

        def coerce_list(value: Any) -> Any:
            if type(value) is not list:
                raise _Slow  # graphql-core takes other iterables, and a single value as a list of one
            return [item(v) for v in value]

        return coerce_list
    if isinstance(type_, GraphQLInputObjectType):
        if type_.is_one_of or type_.name in visiting:
            return None
        visiting = visiting | {type_.name}
        given = []
        defaults = []
        for name, field in type_.fields.items():
            coerce = _compile(field.type, depth + 1, visiting)
            if coerce is None:
                return None
            out_name = field.out_name or name
            if is_required_input_field(field):
                default: Any = _REQUIRED
            else:
                try:
                    default = coerce_default_value(field)  # graphql-core's, memoized on the field
                except Exception:
                    return None
            given.append((name, out_name, coerce))
            defaults.append((name, out_name, default))
        names = frozenset(type_.fields)
        out_type = type_.out_type

        def coerce_object(value: Any) -> Any:
            if type(value) is not dict or not names.issuperset(value):
                raise _Slow
            coerced: dict[str, Any] = {}
            if len(value) == len(given):  # every field given (what clients send)
                for name, out_name, coerce in given:
                    coerced[out_name] = coerce(value[name])
            else:
                for (name, out_name, coerce), (_, _, default) in zip(given, defaults, strict=True):
                    v = value.get(name, Undefined)
                    if v is not Undefined:
                        coerced[out_name] = coerce(v)
                    elif default is _REQUIRED:
                        raise _Slow
                    elif default is not Undefined:
                        coerced[out_name] = default
            try:
                return out_type(coerced)
            except Exception:
                raise _Slow from None  # strawberry's one-of check, say: graphql-core reports it

        return coerce_object
    return None


_REQUIRED = object()


def _compile_built(type_: Any, depth: int = 0) -> Coercer | None:
    """A coercer of a list (nullable or not) of ``plain_input`` objects (``api/common.py``) that
    also builds them: what ``_compile``'s coercer and then each item's ``from_input`` give, in one
    pass over the values (no dict per item in between). ``None`` when the type is not such a
    list (or has something this does not do: a field default that is an object, say)."""
    non_null = isinstance(type_, GraphQLNonNull)
    named = type_.of_type if non_null else type_
    if not isinstance(named, GraphQLList):
        return None
    item_type = named.of_type
    item_non_null = isinstance(item_type, GraphQLNonNull)
    build = _plain_builder(item_type.of_type if item_non_null else item_type, depth + 1)
    if build is None:
        return None

    def coerce_built_list(value: Any) -> Any:
        if value is None or value is Undefined:
            if non_null or value is Undefined:
                raise _Slow
            return None
        if type(value) is not list:
            raise _Slow  # graphql-core takes other iterables, and a single value as a list of one
        out = []
        for v in value:
            if v is None:
                if item_non_null:
                    raise _Slow
                out.append(None)
            else:
                out.append(build(v))
        return out

    return coerce_built_list


def _plain_builder(type_: Any, depth: int) -> Coercer | None:
    """For a non-null value of a ``plain_input`` object type: coerce its fields and build it."""
    if depth > _MAX_DEPTH or not isinstance(type_, GraphQLInputObjectType) or type_.is_one_of:
        return None
    definition = (type_.extensions or {}).get(_DEFINITION)
    from_input = getattr(definition, "from_input", None)
    if not getattr(from_input, "plain", False) or type_.out_type is not GraphQLInputObjectType.out_type:
        return None
    python_names = {graphql_name: (python_name, convert) for graphql_name, python_name, convert in from_input.fields}
    steps = []
    for name, field in type_.fields.items():
        out_name = field.out_name or name
        if out_name not in python_names:
            return None
        python_name, convert = python_names[out_name]
        field_type = field.type
        field_non_null = isinstance(field_type, GraphQLNonNull)
        nested = _plain_builder(field_type.of_type if field_non_null else field_type, depth + 1)
        if nested is not None:
            coerce: Coercer | None = _non_null_or_none(nested, field_non_null)
            convert = None  # built already
        else:
            coerce = _compile(field_type, depth + 1)
        if coerce is None:
            return None
        if is_required_input_field(field):
            default: Any = _REQUIRED
        else:
            try:
                default = coerce_default_value(field)
            except Exception:
                return None
            if nested is not None and default is not Undefined and default is not None:
                return None  # an object as a default: left to the two-step path
        steps.append((name, python_name, coerce, convert, default))
    # The fields given are coerced; the others take their defaults (a copy of a list default:
    # graphql-core shares it between requests), and a required one missing is graphql-core's.
    by_name = {name: (python_name, coerce, convert) for name, python_name, coerce, convert, _ in steps}
    required = frozenset(name for name, _, _, _, default in steps if default is _REQUIRED)
    defaults = [
        (name, python_name, default, convert)
        for name, python_name, _, convert, default in steps
        if default is not _REQUIRED and default is not Undefined
    ]
    builds = from_input.builds

    def build(value: Any) -> Any:
        if type(value) is not dict or not required.issubset(value):
            raise _Slow
        kwargs: dict[str, Any] = {}
        for name, v in value.items():
            step = by_name.get(name)
            if step is None:
                raise _Slow  # a field the type does not have
            python_name, coerce, convert = step
            v = coerce(v)
            kwargs[python_name] = v if convert is None or v is None else convert(v)
        if len(kwargs) != len(by_name):
            for name, python_name, default, convert in defaults:
                if name not in value:
                    kwargs[python_name] = default if convert is None or default is None else convert(default)
        try:
            return builds(**kwargs)
        except Exception:
            raise _Slow from None  # the two-step path says what is wrong

    return build


def _non_null_or_none(inner: Coercer, non_null: bool) -> Coercer:
    def coerce(value: Any) -> Any:
        if value is None:
            if non_null:
                raise _Slow
            return None
        if value is Undefined:
            raise _Slow
        return inner(value)

    return coerce


class FastExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context with the leaf-field shortcut (see the module docstring).

    ``executor_class()`` makes one subclass per schema, so the per-field decisions are cached
    per schema (``_leaves``).
    """

    _leaves: dict[tuple[str, str], Leaf | None]
    _nested: dict[tuple[str, str], Nested | None]
    _coercers: dict[str, Coercer | None]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Middleware wraps every resolver, the default ones too: then no field is a shortcut.
        self._shortcuts = not (self.middleware_manager and self.middleware_manager.middlewares)
        # Per execution: a selection's plan, by the identity of its grouped field set (kept
        # alive alongside, so the id is not reused while this execution runs).
        self._plans: dict[int, tuple[Any, list[tuple[str, Any, Leaf | None]]]] = {}

    def _plan(self, parent_type: GraphQLObjectType, grouped_field_set: Any) -> list[tuple[str, Any, Leaf | None]]:
        found = self._plans.get(id(grouped_field_set))
        if found is not None and found[0] is grouped_field_set:
            return found[1]
        leaves = self._leaves
        plan = []
        for response_name, field_details_list in grouped_field_set.items():
            field_name = field_details_list[0].node.name.value
            key = (parent_type.name, field_name)
            if key in leaves:
                leaf = leaves[key]
            else:
                field = self.schema.get_field(parent_type, field_name)
                leaf = leaves[key] = _leaf(field) if field is not None else None
            if leaf is not None and any(d.node.arguments for d in field_details_list):
                leaf = None
            plan.append((response_name, field_details_list, leaf))
        self._plans[id(grouped_field_set)] = (grouped_field_set, plan)
        return plan

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        plan = self._plan(parent_type, grouped_field_set) if self._shortcuts else None
        if plan is None or all(leaf is None for _, _, leaf in plan):
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        results: dict[str, Any] = {}
        awaitable_fields: list[str] = []
        is_awaitable = self.is_awaitable
        try:
            for response_name, field_details_list, leaf in plan:
                if leaf is not None:
                    name, serialize, non_null = leaf
                    try:
                        value = getattr(source_value, name)
                        if value is None:
                            if not non_null:
                                results[response_name] = None
                                continue
                        elif not isinstance(value, Exception):
                            serialized = serialize(value)
                            if serialized is not None and serialized is not Undefined:
                                results[response_name] = serialized
                                continue
                    except Exception:
                        pass
                    # Anything unusual: graphql-core's own path, with its errors.
                result = self.execute_field(
                    parent_type,
                    source_value,
                    field_details_list,
                    Path(path, response_name, parent_type.name),
                    position_context,
                )
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[f] for f in awaitable_fields])
            raise
        if not awaitable_fields:
            return results

        async def get_results() -> dict[str, Any]:
            awaited = await gather_with_cancel(*(results[f] for f in awaitable_fields))
            results.update(zip(awaitable_fields, awaited, strict=True))
            return results

        return get_results()

    def complete_list_value(
        self,
        return_type: Any,
        field_details_list: Any,
        info: Any,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        """A list of objects whose selected fields are all plain (scalars, or objects of plain
        fields) is completed item by item here, without graphql-core's per-item and per-field
        steps: a page of 100 task runs, the 100 outcomes of a batched write. Anything the
        shortcut cannot do, on any item, sends the whole list through graphql-core."""
        if self._shortcuts and position_context is None and type(result) is list:
            item_type = return_type.of_type
            non_null = isinstance(item_type, GraphQLNonNull)
            object_type = item_type.of_type if non_null else item_type
            if (
                isinstance(object_type, GraphQLObjectType)
                and object_type.is_type_of is None
                and not self.get_stream_usage(field_details_list, path)
            ):
                try:
                    plan = self._object_plan(object_type, field_details_list)
                    completed = []
                    for item in result:
                        if item is None:
                            if non_null:
                                raise _Fallback
                            completed.append(None)
                        else:
                            completed.append(self._complete_plain(plan, item))
                    return completed
                except Exception:  # _Fallback, or anything a value did: graphql-core's path says it
                    pass
        return super().complete_list_value(return_type, field_details_list, info, path, result, position_context)

    def _object_plan(self, object_type: GraphQLObjectType, field_details_list: Any) -> list[Any]:
        """``(response name, leaf, nested)`` for each selected field of ``object_type``; raises
        ``_Fallback`` when a field is neither a plain scalar nor a plain object, or the selection
        defers something."""
        grouped, defers, forbidden = self.collect_subfields(object_type, field_details_list)
        if defers or forbidden:
            raise _Fallback
        plan = []
        nested_decisions = self._nested
        for response_name, details, leaf in self._plan(object_type, grouped):
            nested = None
            if leaf is None:
                field_name = details[0].node.name.value
                key = (object_type.name, field_name)
                if key in nested_decisions:
                    nested = nested_decisions[key]
                else:
                    field = self.schema.get_field(object_type, field_name)
                    nested = nested_decisions[key] = _nested_object(field) if field is not None else None
                if nested is None or any(d.node.arguments for d in details):
                    raise _Fallback
                nested = (*nested, details)
            plan.append((response_name, leaf, nested))
        return plan

    def _complete_plain(self, plan: list[Any], source: Any) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for response_name, leaf, nested in plan:
            if leaf is not None:
                name, serialize, non_null = leaf
                value = getattr(source, name)
                if value is None:
                    if non_null:
                        raise _Fallback
                    result[response_name] = None
                    continue
                if isinstance(value, Exception):
                    raise _Fallback
                serialized = serialize(value)
                if serialized is None or serialized is Undefined:
                    raise _Fallback
                result[response_name] = serialized
            else:
                name, object_type, non_null, details = nested
                value = getattr(source, name)
                if value is None:
                    if non_null:
                        raise _Fallback
                    result[response_name] = None
                else:
                    result[response_name] = self._complete_plain(self._object_plan(object_type, details), value)
        return result

    @classmethod
    def build(  # type: ignore[override]
        cls,
        schema: GraphQLSchema,
        document: Any,
        root_value: Any = None,
        context_value: Any = None,
        raw_variable_values: dict[str, Any] | None = None,
        operation_name: str | None = None,
        field_resolver: Any = None,
        type_resolver: Any = None,
        subscribe_field_resolver: Any = None,
        max_coercion_errors: int = 50,
        enable_early_execution: bool = False,
        middleware: Any = None,
        is_awaitable: Any = None,
        is_async_iterable: Any = None,
        hide_suggestions: bool = False,
        abort_signal: Any = None,
        hooks: Any = None,
        **custom_args: Any,
    ) -> Any:
        """graphql-core's ``Executor.build``, with the variables coerced by compiled coercers.

        The common case only: one operation (or the one named), fragments without variables,
        every variable given and accepted by its coercer. Anything else is graphql-core's.
        """
        fast = None
        if middleware is None or isinstance(middleware, MiddlewareManager):
            fast = cls._fast_start(schema, document, operation_name, raw_variable_values or {})
        if fast is None:
            return super().build(
                schema,
                document,
                root_value=root_value,
                context_value=context_value,
                raw_variable_values=raw_variable_values,
                operation_name=operation_name,
                field_resolver=field_resolver,
                type_resolver=type_resolver,
                subscribe_field_resolver=subscribe_field_resolver,
                max_coercion_errors=max_coercion_errors,
                enable_early_execution=enable_early_execution,
                middleware=middleware,
                is_awaitable=is_awaitable,
                is_async_iterable=is_async_iterable,
                hide_suggestions=hide_suggestions,
                abort_signal=abort_signal,
                hooks=hooks,
                **custom_args,
            )
        operation, fragment_definitions, fragments, variable_values = fast
        return cls(
            schema,
            fragment_definitions,
            fragments,
            root_value,
            context_value,
            operation,
            variable_values,
            field_resolver or default_field_resolver,
            type_resolver or default_type_resolver,
            subscribe_field_resolver or default_field_resolver,
            enable_early_execution,
            middleware,
            is_awaitable,
            is_async_iterable,
            hide_suggestions=hide_suggestions,
            abort_signal=abort_signal,
            hooks=hooks,
            **custom_args,
        )

    @classmethod
    def _fast_start(
        cls, schema: GraphQLSchema, document: Any, operation_name: str | None, inputs: dict[str, Any]
    ) -> tuple[OperationDefinitionNode, dict[str, Any], dict[str, Any], VariableValues] | None:
        assert_valid_schema(schema)
        operation: OperationDefinitionNode | None = None
        fragment_definitions: dict[str, FragmentDefinitionNode] = {}
        fragments: dict[str, FragmentDetails] = {}
        for definition in document.definitions:
            if isinstance(definition, OperationDefinitionNode):
                if operation_name is None:
                    if operation is not None:
                        return None  # several operations and no name: graphql-core says so
                    operation = definition
                elif definition.name and definition.name.value == operation_name:
                    operation = definition
            elif isinstance(definition, FragmentDefinitionNode):
                if definition.variable_definitions:
                    return None
                fragment_definitions[definition.name.value] = definition
                fragments[definition.name.value] = FragmentDetails(definition, None)
        if operation is None:
            return None
        sources: dict[str, VariableValueSource] = {}
        coerced: dict[str, Any] = {}
        coercers = cls._coercers
        for var_def_node in operation.variable_definitions or ():
            signature = get_variable_signature(schema, var_def_node)
            if not hasattr(signature, "type"):
                return None  # an error (an output type as a variable's type)
            value = inputs.get(signature.name, Undefined)
            if value is Undefined:
                return None  # defaults and missing variables: graphql-core's rules
            key = str(signature.type)
            if key in coercers:
                coerce = coercers[key]
            else:
                coerce = coercers[key] = _compile(signature.type)
            if coerce is None:
                return None
            try:
                coerced[signature.name] = coerce(value)
            except _Slow:
                return None
            except RecursionError:
                return None
            sources[signature.name] = VariableValueSource(signature, value)
        return operation, fragment_definitions, fragments, VariableValues(sources, coerced)


def executor_class() -> type[FastExecutor]:
    """A ``FastExecutor`` subclass for one schema (its own caches of field and type decisions)."""
    return type("PlaitExecutor", (FastExecutor,), {"_leaves": {}, "_nested": {}, "_coercers": {}})
