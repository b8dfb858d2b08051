"""structlog set-up, done once per process: one stream of JSON lines unless on a terminal.

structlog's own loggers and every stdlib logger (uvicorn, aiokafka, FastStream, asyncio, Python warnings) end in
the same handler, whose ``ProcessorFormatter`` renders both kinds alike, so a service never prints a plain-text
line when its output is collected. Uncaught exceptions are logged the same way before the process exits."""

from __future__ import annotations

import logging
import sys
from types import TracebackType
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from shared.tracing import add_trace_id

_HANDLER_NAME = "contacts"
QUIET_LOGGERS = ("aiokafka", "kafka")
"""Libraries that log every reconnect and rebalance at INFO: their warnings and errors are enough."""


def _service_adder(service: str) -> Processor:
    def add_service(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add_service


def _uvicorn_access_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """uvicorn's access lines as fields (client, method, path, status) instead of one formatted string."""
    record = event_dict.get("_record")
    args = event_dict.pop("positional_args", None)
    event_dict.pop("color_message", None)  # uvicorn's copy of the message with terminal colour codes
    if record is not None and record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
        client, method, path, http_version, status = args
        event_dict.update(
            event="http.request", client=client, method=method, path=path, http_version=http_version, status=status
        )
    return event_dict


def use_json(fmt: str) -> bool:
    """``auto`` is JSON unless standard error is a terminal (a person watching)."""
    return fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())


def configure_logging(*, level: str = "INFO", fmt: str = "auto", service: str) -> None:
    """Route structlog and the stdlib's logging through one stderr handler. Safe to call again (tests build
    several apps in one process): the previous handler is replaced, not duplicated."""
    json_output = use_json(fmt)
    renderer: Processor = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    )
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _service_adder(service),
        add_trace_id,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _uvicorn_access_fields],
        pass_foreign_args=True,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if json_output else _keep_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in list(root.handlers):
        # ours from an earlier call, or a plain console handler (basicConfig) that would print non-JSON lines;
        # other handlers (pytest's capture) stay
        if old.get_name() == _HANDLER_NAME or type(old) is logging.StreamHandler:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "faststream"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
    logging.captureWarnings(True)

    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    if json_output:
        sys.excepthook = _log_uncaught


def _keep_exc_info(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """The console renderer prints tracebacks itself (prettier than a formatted string)."""
    return event_dict


def _log_uncaught(kind: type[BaseException], error: BaseException, traceback: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, traceback)
        return
    exc_info: Any = (kind, error, traceback)
    structlog.get_logger("uncaught").critical("process.crashed", exc_info=exc_info)
