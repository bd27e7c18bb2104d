"""Input limits of mvirt-log: checked by the service, applied by the audit client, and the
source of the server's gRPC message size options. One set of numbers (docs/log.md, Limits).

Violations are INVALID_ARGUMENT with the field (and its index) named in the message.
"""

from __future__ import annotations

import re

from mvirt.daemon.errors import InvalidArgumentError
from mvirt.daemon.ulid import is_ulid
from mvirt.proto import log_pb2

MAX_MESSAGE_BYTES = 16 * 1024
MAX_RELATED_IDS = 64
MAX_BATCH_ENTRIES = 10_000
MAX_REQUEST_BYTES = 4 * 1024 * 1024
"""Largest ``Log``/``LogBatch`` request the service stores (serialized size); larger ones are
INVALID_ARGUMENT naming this limit. The audit client caps its batches at this size."""
MAX_RECEIVE_BYTES = 2 * MAX_REQUEST_BYTES
"""The server's ``grpc.max_receive_message_length``: requests up to this size are read and
answered with the precise INVALID_ARGUMENT above; anything larger gRPC refuses unread
(RESOURCE_EXHAUSTED), so one request can never make the daemon buffer more than this."""
MAX_CONCURRENT_RPCS = 1024
"""The server's ``maximum_concurrent_rpcs``: calls beyond it get RESOURCE_EXHAUSTED."""
MAX_FOLLOWERS = 256
"""Open ``follow`` queries at most; one more gets RESOURCE_EXHAUSTED."""
OBJECT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}$")
COMPONENT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_OBJECT_ID_RULE = "1-128 characters of A-Z a-z 0-9 . _ : @ / + = -, starting with a letter or digit"
_COMPONENT_RULE = "1-64 characters of a-z 0-9 . _ -, starting with a letter or digit"
LEVELS = frozenset(log_pb2.LogLevel.values())


def check_object_id(value: str, field: str) -> None:
    """Raises InvalidArgumentError unless ``value`` is a usable object id."""
    if OBJECT_ID_PATTERN.match(value) is None:
        raise InvalidArgumentError(
            f"{field} {value[:140]!r} is not a valid object id: {_OBJECT_ID_RULE}"
        )


def check_component(value: str, field: str) -> None:
    """Raises InvalidArgumentError unless ``value`` is a usable component name."""
    if COMPONENT_PATTERN.match(value) is None:
        raise InvalidArgumentError(
            f"{field} {value[:80]!r} is not a valid component: {_COMPONENT_RULE}"
        )


def check_request_size(size: int) -> None:
    """Raises InvalidArgumentError if a request of ``size`` bytes is over MAX_REQUEST_BYTES."""
    if size > MAX_REQUEST_BYTES:
        raise InvalidArgumentError(
            f"the request is {size} bytes; the limit is {MAX_REQUEST_BYTES} bytes per call: "
            "send the entries in smaller batches"
        )


def check_entry(entry: log_pb2.LogEntry, field: str = "entry") -> None:
    """Raises InvalidArgumentError naming the first field of ``entry`` that breaks a limit."""
    if entry.id and not is_ulid(entry.id):
        raise InvalidArgumentError(
            f"{field}.id {entry.id[:40]!r} is not a ULID (26 characters of Crockford base32); "
            "leave it empty to let the server assign one"
        )
    if entry.timestamp_ns < 0:
        raise InvalidArgumentError(
            f"{field}.timestamp_ns is negative ({entry.timestamp_ns}); use 0 for 'now'"
        )
    if not entry.message:
        raise InvalidArgumentError(f"{field}.message is empty")
    size = len(entry.message.encode("utf-8", "surrogatepass"))
    if size > MAX_MESSAGE_BYTES:
        raise InvalidArgumentError(
            f"{field}.message is {size} bytes; the limit is {MAX_MESSAGE_BYTES} bytes"
        )
    if entry.level not in LEVELS:
        raise InvalidArgumentError(
            f"{field}.level {entry.level} is not a LogLevel (INFO 0, WARN 1, ERROR 2, DEBUG 3, "
            "AUDIT 4)"
        )
    if entry.component:
        check_component(entry.component, f"{field}.component")
    if len(entry.related_object_ids) > MAX_RELATED_IDS:
        raise InvalidArgumentError(
            f"{field}.related_object_ids has {len(entry.related_object_ids)} ids; "
            f"the limit is {MAX_RELATED_IDS}"
        )
    for i, object_id in enumerate(entry.related_object_ids):
        check_object_id(object_id, f"{field}.related_object_ids[{i}]")
