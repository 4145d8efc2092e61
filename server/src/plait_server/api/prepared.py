"""Prepared operations: the hot documents answered without the generic executor.

A client sends the same document for every run it creates. Through strawberry and
graphql-core, each such request goes through the schema extensions' hooks, the operation's
preparation, the executor's set-up, field collection at every level, the resolver's wrappers
(argument conversion, the permission extension, the resolve info) and the completion of each
object: about half of the server's Python time per run created, for work whose outcome is the
same for every request with that document.

``Prepared.of(schema, document)`` looks at a parsed and *validated* document once and, when
it is simple enough, keeps what each request needs: the root field's resolver, its permission
classes, a compiled coercer per variable and the plan of the answer's fields (the executor's
own plain-field plans). ``Prepared.run(context, variables)`` then does, in order:

1. the permission checks (our own scope classes, evaluated directly);
2. the variables' coercion (the executor's compiled coercers) and strawberry's argument
   conversion (for an argument that is a list of ``plain_input`` types, such as a batch of
   states, their own builder called per item: what strawberry's conversion ends in, without its
   checks of each item's type);
3. the resolver, with an ``info`` that carries the request's context;
4. the answer, completed from the plan.

Anything unusual in steps 1 and 2 (a permission refused, a variable the compiled coercer
leaves to graphql-core, a conversion that fails) returns ``None`` before anything has
happened, and the caller runs the document through the generic path, which answers (or
refuses) exactly as before. An error raised by the resolver becomes the error graphql-core
would have made of it (located at the field, the root field's ``null`` propagated), so the
HTTP endpoint formats it as usual. The answers are the same as the generic path's, field for
field (``tests/test_prepared.py`` compares them).

What a document must be to be prepared: one operation (a query or mutation, named or not), no
fragments, no directives, one root field from ``ROOT_FIELDS`` whose arguments are all given as
variables of exactly the argument's type, and a selection of plain fields (scalars, or objects
of plain fields; the executor's definition) without arguments. A field is listed in
``ROOT_FIELDS`` only if its resolver uses nothing of ``info`` but ``info.context``, and its
only field extension is ``needs(...)``. The root field returns an object or a list of
objects (a batch's outcomes).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from graphql import (
    GRAPHQL_MAX_INT,
    GRAPHQL_MIN_INT,
    FieldNode,
    GraphQLBoolean,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLString,
    OperationDefinitionNode,
    OperationType,
    Undefined,
    VariableNode,
    located_error,
    type_from_ast,
)
from strawberry.permission import PermissionExtension
from strawberry.types.arguments import convert_arguments
from strawberry.types.base import StrawberryList

from plait_server.api.context import NotRunScoped, _Scope
from plait_server.api.execution import (
    _DEFINITION,
    _compile,
    _compile_built,
    _default_attribute,
    _Fallback,
    _leaf,
    _Slow,
)
from plait_server.data.keys import allows

if TYPE_CHECKING:
    import strawberry
    from graphql import DocumentNode, GraphQLError

    from plait_server.api.context import Context

__all__ = ["ROOT_FIELDS", "Prepared"]

#: Root fields whose documents may be prepared: hot, and their resolvers read only
#: ``info.context`` (see the module docstring).
ROOT_FIELDS = frozenset({"create_flow_run", "set_task_run_states"})


class _Info:
    """What a prepared field's resolver gets as ``info``: the request's context."""

    __slots__ = ("context",)

    def __init__(self, context: Context) -> None:
        self.context = context


class Prepared:
    """One prepared document (see the module docstring)."""

    __slots__ = (
        "_arguments",
        "_checks",
        "_convert",
        "_field_nodes",
        "_info_name",
        "_items_non_null",
        "_many",
        "_non_null",
        "_plan",
        "_resolver",
        "_response_name",
        "_self",
        "_variables",
        "operation_name",
    )

    @classmethod
    def of(cls, schema: strawberry.Schema, document: DocumentNode) -> Prepared | None:
        """The prepared form of a validated ``document``, or ``None`` when it is not simple enough."""
        try:
            return cls._prepare(schema, document)
        except (_Fallback, _Slow):
            return None

    @classmethod
    def _prepare(cls, schema: strawberry.Schema, document: DocumentNode) -> Prepared | None:
        definitions = document.definitions
        if len(definitions) != 1 or not isinstance(definitions[0], OperationDefinitionNode):
            return None
        operation = definitions[0]
        if operation.directives or operation.operation not in (OperationType.QUERY, OperationType.MUTATION):
            return None
        selections = operation.selection_set.selections
        if len(selections) != 1 or not isinstance(selections[0], FieldNode):
            return None
        node = selections[0]
        if node.directives or node.name.value not in ROOT_FIELDS:
            return None
        core = schema._schema
        root = core.mutation_type if operation.operation == OperationType.MUTATION else core.query_type
        field = root.fields.get(node.name.value) if root is not None else None
        if field is None:
            return None
        definition = (field.extensions or {}).get(_DEFINITION)
        resolver = getattr(definition, "base_resolver", None)
        if resolver is None or resolver.is_async or len(definition.extensions) != 1:
            return None
        if resolver.root_parameter is not None or resolver.parent_parameter is not None:
            return None
        (extension,) = definition.extensions
        if type(extension) is not PermissionExtension or extension.fail_silently:
            return None
        checks: list[Callable[[Any], bool]] = []
        for permission in extension.permissions:
            if isinstance(permission, _Scope):
                checks.append(lambda key, scope=permission.scope: allows(key.scope, scope))
            elif isinstance(permission, NotRunScoped):
                checks.append(lambda key: key.flow_run_id is None)
            else:
                return None
        # Each argument given by a variable of exactly the argument's type.
        declared = {v.variable.name.value: v for v in operation.variable_definitions or ()}
        arguments = []
        used = set()
        for argument in node.arguments or ():
            value = argument.value
            if not isinstance(value, VariableNode):
                return None
            name = value.name.value
            variable = declared.get(name)
            target = field.args.get(argument.name.value)
            if variable is None or target is None or variable.default_value is not None or variable.directives:
                return None
            variable_type = type_from_ast(core, variable.type)
            if variable_type is None or str(variable_type) != str(target.type):
                return None
            coerce = _compile(variable_type)
            if coerce is None:
                return None
            arguments.append((argument.name.value, name, coerce))
            used.add(name)
        # Every argument given (graphql-core's defaults for omitted ones are not done here).
        if used != set(declared) or {a[0] for a in arguments} != set(field.args):
            return None
        return_type = field.type
        non_null = isinstance(return_type, GraphQLNonNull)
        object_type = return_type.of_type if non_null else return_type
        many = items_non_null = False
        if isinstance(object_type, GraphQLList):  # a list of objects (a batch's outcomes)
            many = True
            object_type = object_type.of_type
            items_non_null = isinstance(object_type, GraphQLNonNull)
            object_type = object_type.of_type if items_non_null else object_type
        if not isinstance(object_type, GraphQLObjectType) or object_type.is_type_of is not None:
            return None
        plan = _plan(object_type, node)
        prepared = cls.__new__(cls)
        prepared.operation_name = operation.name.value if operation.name else None
        prepared._response_name = node.alias.value if node.alias else node.name.value
        prepared._field_nodes = [node]
        prepared._checks = checks
        prepared._variables = set(declared)
        convert = _converter(definition.arguments, {a[0] for a in arguments})
        if convert is not None:
            # Lists of plain inputs (a batch of states): coerced and built in one pass.
            built = [(a, v, _compile_built(type_from_ast(core, declared[v].type))) for a, v, _ in arguments]
            if all(b[2] is not None for b in built):
                arguments, convert = built, _unchanged
        prepared._arguments = arguments
        prepared._convert = convert or _strawberry_converter(definition.arguments, schema)
        prepared._resolver = resolver.wrapped_func
        parameters = inspect.signature(resolver.wrapped_func).parameters
        prepared._self = resolver.self_parameter is not None
        info_parameter = resolver.info_parameter
        prepared._info_name = info_parameter.name if info_parameter is not None else None
        if prepared._self and next(iter(parameters)) != resolver.self_parameter.name:
            return None
        prepared._non_null = non_null
        prepared._many = many
        prepared._items_non_null = items_non_null
        prepared._plan = plan
        return prepared

    def run(self, context: Context, variables: dict[str, Any]) -> dict[str, Any] | None:
        """The answer (``{"data": ..., "errors": [GraphQLError]}``), or ``None``: use the generic path."""
        key = context.key
        for check in self._checks:
            if not check(key):
                return None  # the generic path refuses it, with its error
        if len(variables) != len(self._variables):
            return None
        raw: dict[str, Any] = {}
        try:
            for argument, variable, coerce in self._arguments:
                raw[argument] = coerce(variables[variable])
            kwargs = self._convert(raw)
        except Exception:
            return None  # _Slow, a missing variable, a conversion error: graphql-core says it
        if self._info_name is not None:
            kwargs[self._info_name] = _Info(context)
        try:
            result = self._resolver(None, **kwargs) if self._self else self._resolver(**kwargs)
            if result is None:
                completed = None
            elif self._many:
                completed = _complete_list(self._plan, result, self._items_non_null)
            else:
                completed = _complete(self._plan, result)
            if completed is None and self._non_null:
                raise _Fallback
        except _Fallback:
            # A value the answer's types refuse (a null in a non-null field, say): never from
            # the data layer's records; reported as the server's error, with a reference.
            error: GraphQLError = located_error(
                RuntimeError(f"the answer of {self._response_name} does not fit its type"),
                self._field_nodes,
                [self._response_name],
            )
            return {"data": None if self._non_null else {self._response_name: None}, "errors": [error]}
        except Exception as exc:
            error = located_error(exc, self._field_nodes, [self._response_name])
            return {"data": None if self._non_null else {self._response_name: None}, "errors": [error]}
        return {"data": {self._response_name: completed}}


# --- the answer's plan ------------------------------------------------------------------------------

_LEAF, _LEAVES, _OBJECT, _EXACT = 0, 1, 2, 3

#: Built-in scalars whose ``serialize`` returns a value of exactly this Python type as it is
#: (an ``Int`` within 32 bits): such a value is answered without the call.
_EXACT_TYPES = {GraphQLString: str, GraphQLID: str, GraphQLBoolean: bool, GraphQLInt: int}

#: One selected field: (response name, attribute, kind, non-null, the leaf's serialize / the
#: list's (serialize, items non-null) / the object's plan / an exact leaf's (serialize, type)).
Step = tuple[str, str, int, bool, Any]


def _plan(object_type: GraphQLObjectType, node: FieldNode) -> list[Step]:
    """How to complete ``node``'s selection on ``object_type``; ``_Fallback`` when a selected
    field is not plain: a scalar or enum, a list of them, or an object of such fields, read as
    an attribute (no resolver, arguments, directives, fragments or ``__typename``)."""
    if node.selection_set is None:
        raise _Fallback
    plan: list[Step] = []
    names: set[str] = set()
    for selection in node.selection_set.selections:
        if not isinstance(selection, FieldNode) or selection.directives or selection.arguments:
            raise _Fallback
        response_name = selection.alias.value if selection.alias else selection.name.value
        if response_name in names:
            raise _Fallback  # the same response name twice: graphql-core merges the selections
        names.add(response_name)
        field = object_type.fields.get(selection.name.value)
        if field is None:
            raise _Fallback
        leaf = _leaf(field)
        if leaf is not None:
            attribute, serialize, non_null = leaf
            if selection.selection_set is not None:
                raise _Fallback
            named = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
            exact = _EXACT_TYPES.get(named)
            if exact is not None and serialize is named.serialize:
                plan.append((response_name, attribute, _EXACT, non_null, (serialize, exact)))
            else:
                plan.append((response_name, attribute, _LEAF, non_null, serialize))
            continue
        found = _default_attribute(field)
        if found is None:
            raise _Fallback
        attribute, kind, non_null = found
        if isinstance(kind, GraphQLList):
            item = kind.of_type
            item_non_null = isinstance(item, GraphQLNonNull)
            item = item.of_type if item_non_null else item
            if isinstance(item, (GraphQLList, GraphQLObjectType)) or not hasattr(item, "serialize"):
                raise _Fallback
            plan.append((response_name, attribute, _LEAVES, non_null, (item.serialize, item_non_null)))
        elif isinstance(kind, GraphQLObjectType) and kind.is_type_of is None:
            plan.append((response_name, attribute, _OBJECT, non_null, _plan(kind, selection)))
        else:
            raise _Fallback
    return plan


def _converter(arguments: list[Any], given: set[str]) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    """The resolver's arguments from the coerced values, when every argument is a list of
    ``plain_input`` types (``common.plain_input``: each item built by its own ``from_input``,
    which is where strawberry's conversion ends for such an item); ``None``: strawberry's
    ``convert_arguments`` does it."""
    steps = []
    for argument in arguments:
        kind = argument.type
        if argument.python_name not in given or argument.graphql_name not in (None, argument.python_name):
            return None
        if not isinstance(kind, StrawberryList):
            return None
        item = kind.of_type
        build = getattr(getattr(item, "__strawberry_definition__", None), "from_input", None)
        if not getattr(build, "plain", False):
            return None
        steps.append((argument.python_name, item, build))

    def convert(raw: dict[str, Any]) -> dict[str, Any]:
        kwargs = {}
        for name, item, build in steps:
            value = raw[name]
            kwargs[name] = None if value is None else [None if v is None else build(item, v, None) for v in value]
        return kwargs

    return convert


def _unchanged(raw: dict[str, Any]) -> dict[str, Any]:
    return raw


def _strawberry_converter(
    arguments: list[Any], schema: strawberry.Schema
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    config, scalars = schema.config, schema.schema_converter.scalar_registry
    return lambda raw: convert_arguments(raw, arguments, scalar_registry=scalars, config=config)


def _complete_list(plan: list[Step], source: Any, items_non_null: bool) -> list[Any]:
    """A list of objects answered by ``plan``, or ``_Fallback``."""
    if isinstance(source, (str, bytes, dict)) or not hasattr(source, "__iter__"):
        raise _Fallback
    out: list[Any] = []
    for item in source:
        if item is None:
            if items_non_null:
                raise _Fallback
            out.append(None)
        elif isinstance(item, Exception):
            raise _Fallback
        else:
            out.append(_complete(plan, item))
    return out


def _complete(plan: list[Step], source: Any) -> dict[str, Any]:
    """``source`` answered by ``plan``: what graphql-core's completion gives, or ``_Fallback``."""
    result: dict[str, Any] = {}
    for response_name, attribute, kind, non_null, how in plan:
        value = getattr(source, attribute)
        if value is None:
            if non_null:
                raise _Fallback
            result[response_name] = None
            continue
        if kind == _EXACT:
            serialize, exact = how
            if type(value) is exact and (exact is not int or GRAPHQL_MIN_INT <= value <= GRAPHQL_MAX_INT):
                result[response_name] = value
                continue
            how = serialize
            kind = _LEAF
        if isinstance(value, Exception):
            raise _Fallback
        if kind == _LEAF:
            serialized = how(value)
            if serialized is None or serialized is Undefined:
                raise _Fallback
            result[response_name] = serialized
        elif kind == _LEAVES:
            if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
                raise _Fallback
            serialize, item_non_null = how
            items = []
            for item in value:
                if item is None:
                    if item_non_null:
                        raise _Fallback
                    items.append(None)
                    continue
                serialized = serialize(item)
                if serialized is None or serialized is Undefined:
                    raise _Fallback
                items.append(serialized)
            result[response_name] = items
        else:
            result[response_name] = _complete(how, value)
    return result
