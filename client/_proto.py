"""Protobuf messages (gRPC answers) as the plain dicts the HTTP API returns.

``MessageToDict`` follows proto3's JSON mapping, which writes 64-bit integers as strings
(``"dims": ["-1"]``, ``"count": "8"``) and drops fields left at their default. Triton's HTTP
API answers with numbers and every field. Converting here means ``model_config()`` and
``statistics()`` return the same shapes and types over both protocols, so callers (gateway,
benchmarks) never branch on the protocol.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

__all__ = ["message_to_dict"]

_INT64_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
)


def message_to_dict(message: Message) -> dict[str, Any]:
    """``message`` as a dict: proto field names, defaults included, 64-bit integers as ints."""
    data = MessageToDict(message, always_print_fields_with_no_presence=True, preserving_proto_field_name=True)
    return _restore_ints(data, message.DESCRIPTOR)


def _restore_ints(data: dict[str, Any], descriptor: Descriptor) -> dict[str, Any]:
    for field in descriptor.fields:
        if field.name in data:
            data[field.name] = _restore_field(data[field.name], field)
    return data


def _restore_field(value: Any, field: FieldDescriptor) -> Any:
    message_type = field.message_type
    if message_type is not None and message_type.GetOptions().map_entry:
        value_field = message_type.fields_by_name["value"]
        return {key: _restore_scalar_or_message(item, value_field) for key, item in value.items()}
    if field.is_repeated:
        return [_restore_scalar_or_message(item, field) for item in value]
    return _restore_scalar_or_message(value, field)


def _restore_scalar_or_message(value: Any, field: FieldDescriptor) -> Any:
    if field.message_type is not None:
        return _restore_ints(value, field.message_type) if isinstance(value, dict) else value
    if field.type in _INT64_TYPES and isinstance(value, str):
        return int(value)
    return value
