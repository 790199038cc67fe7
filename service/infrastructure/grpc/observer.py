"""What every RPC reports to: its metrics, its span when tracing is on, its access line."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from service.infrastructure.observability.logs import AccessLog, trace_id_var
from service.infrastructure.observability.metrics import Metrics

if TYPE_CHECKING:
    from service.infrastructure.authz import Principal

Context = grpc.aio.ServicerContext[Any, Any]
Metadata = tuple[tuple[str, str | bytes], ...]
Traced = tuple[Span, object]  # an RPC's server span and the token of the context it was attached to
_CODE_NAMES = {code: code.name for code in grpc.StatusCode}  # Enum.name is a descriptor call per access


class RpcObserver:
    """What every RPC reports to: metrics, and the tracer when tracing is on."""

    def __init__(
        self, metrics: Metrics, tracer: Tracer | None = None, label: Callable[[str], str] | None = None
    ) -> None:
        self.metrics = metrics
        self.tracer = tracer
        self.label = label or (lambda _: "other")  # the metric label of a principal (bounded)


class MethodObserver:
    """Metrics children, tracing and the access log of one method."""

    def __init__(self, service: str, name: str, observer: RpcObserver, grpc_type: str = "unary") -> None:
        self.service = service
        self.name = name
        self.full_method = f"/{service}/{name}"
        self._rpc = observer.metrics.rpc(service, name, grpc_type)
        self._tracer = observer.tracer
        self._access_log = AccessLog()
        self._metrics = observer.metrics
        self._label = observer.label

    def begin(self, metadata: Metadata, request_id: str) -> Traced | None:
        """Counts the RPC; with tracing on, its span and the context token to detach at the end."""
        self._rpc.begin()
        if self._tracer is None:
            return None
        span = self._tracer.start_span(
            self.full_method[1:],
            context=extract(dict(metadata)),
            kind=SpanKind.SERVER,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": self.service,
                "rpc.method": self.name,
                "todo.request_id": request_id,
            },
        )
        trace_id_var.set(format(span.get_span_context().trace_id, "032x"))
        return span, otel_context.attach(trace.set_span_in_context(span))

    def end(
        self,
        context: Context,
        code: grpc.StatusCode,
        seconds: float,
        traced: Traced | None,
        request_id: str,
        *,
        principal: Principal | None = None,
    ) -> None:
        """Counts and times the RPC, ends its span, writes its access line; `principal`: who called (a gate's)."""
        code_name = _CODE_NAMES[code]
        self._rpc.end(code_name, seconds)
        name = None
        if principal is not None:
            name = principal.name
            self._metrics.principal_rpc(self._label(name), code_name)
        if traced is not None:
            span, token = traced
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if name is not None:
                span.set_attribute("enduser.id", name)
            if code != grpc.StatusCode.OK:
                span.set_status(Status(StatusCode.ERROR, code_name))
            span.end()
            otel_context.detach(token)  # type: ignore[arg-type]
        if self._access_log.enabled:
            self._access_log.write(self.full_method, code_name, seconds, context.peer(), request_id, principal=name)
