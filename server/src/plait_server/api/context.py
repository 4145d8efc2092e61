"""What every resolver gets (``info.context``) and the permission classes on fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from strawberry.permission import BasePermission, PermissionExtension

from plait_server.data.keys import allows

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
    _flows: dict[str, FlowRecord] = field(default_factory=dict)

    def flow(self, flow_id: str) -> FlowRecord:
        """The flow version ``flow_id``, read once per request (a page of 100 runs of one flow
        asks for its ``flow`` 100 times)."""
        found = self._flows.get(flow_id)
        if found is None:
            found = self._flows[flow_id] = self.store.flows.get(flow_id)
        return found


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


_CLASSES = {"read": CanRead, "run": CanRun, "admin": IsAdmin}


def needs(scope: str) -> list[PermissionExtension]:
    """The field extensions that let only keys of ``scope`` (or stronger) use a field."""
    return [PermissionExtension(permissions=[_CLASSES[scope]()], use_directives=False)]
