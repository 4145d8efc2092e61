"""What every resolver gets (``info.context``) and the permission classes on fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from strawberry.permission import BasePermission, PermissionExtension

from plait_server.data.keys import allows
from plait_server.errors import Forbidden

if TYPE_CHECKING:
    from strawberry.types import Info

    from plait_server.data.records import ApiKeyRecord, FlowRecord
    from plait_server.data.store import Store

__all__ = ["Context", "needs"]


@dataclass
class Context:
    """The request's context: the data layer and the API key that authenticated it."""

    store: Store
    key: ApiKeyRecord
    _flows: dict[tuple[str, bool], FlowRecord] = field(default_factory=dict)

    def flow(self, flow_id: str, full: bool = False) -> FlowRecord:
        """The flow version ``flow_id``, read once per request (a page of 100 runs of one flow
        asks for its ``flow`` 100 times); without its two big documents (``definition`` and
        ``storage``) unless ``full``."""
        found = self._flows.get((flow_id, True)) or self._flows.get((flow_id, full))
        if found is None:
            found = self._flows[(flow_id, full)] = self.store.flows.find(flow_id, full=full)
        return found

    def own_run(self, flow_run_id: str) -> None:
        """Refuse (``FORBIDDEN``) a run-scoped key acting on another flow run than its own."""
        if self.key.flow_run_id is not None and flow_run_id != self.key.flow_run_id:
            raise Forbidden(
                f"This key belongs to flow run {self.key.flow_run_id}; it cannot read or change flow run {flow_run_id}"
            )


class _Scope(BasePermission):
    scope: ClassVar[str] = "read"
    error_extensions: ClassVar[dict[str, Any]] = {"code": "FORBIDDEN"}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return allows(info.context.key.scope, self.scope)


class CanRead(_Scope):
    scope = "read"
    message = "This needs an API key with scope read, run or admin"


class CanRun(_Scope):
    scope = "run"
    message = "This needs an API key with scope run or admin (a read key cannot change anything)"


class IsAdmin(_Scope):
    scope = "admin"
    message = "This needs an API key with scope admin"


class NotRunScoped(BasePermission):
    """Refuses run-scoped keys: a key given to one flow run's process may only use the few
    fields that read and report that run (``needs(..., run_key=True)``)."""

    message = (
        "This key is run-scoped (an agent gave it to one flow run's process): it may only read and report "
        "its own flow run"
    )
    error_extensions: ClassVar[dict[str, Any]] = {"code": "FORBIDDEN"}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return info.context.key.flow_run_id is None


_CLASSES = {"read": CanRead, "run": CanRun, "admin": IsAdmin}


def needs(scope: str, run_key: bool = False) -> list[PermissionExtension]:
    """The field extensions that let only keys of ``scope`` (or stronger) use a field.

    ``run_key``: run-scoped keys may use it too (the resolver checks the run with
    ``Context.own_run``).
    """
    permissions: list[BasePermission] = [_CLASSES[scope]()]
    if not run_key:
        permissions.append(NotRunScoped())
    return [PermissionExtension(permissions=permissions, use_directives=False)]
