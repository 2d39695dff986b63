"""The OpenAPI documents, made to say what the API answers on bad input.

FastAPI documents a ``422`` with its own validation body on every route that takes
parameters, but :mod:`contactsync.api.errors` answers ``400`` with Contacthub's error body:
clients generated from the document must expect that instead.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "description": "Contacthub's error body, plus contactsync's stable `code` and its `hint`.",
    "type": "object",
    "required": ["message", "logref", "data", "errors", "code"],
    "properties": {
        "message": {"type": "string"},
        "logref": {"type": "string", "description": "identifies the request in the service log"},
        "data": {"description": "extra detail, such as the existing customer of a 409"},
        "errors": {
            "type": "array",
            "description": "the problems, field by field",
            "items": {
                "type": "object",
                "required": ["path", "message", "code", "data"],
                "properties": {
                    "path": {"type": "string"},
                    "message": {"type": "string"},
                    "code": {"type": "string"},
                    "data": {},
                },
            },
        },
        "code": {"type": "string", "description": "stable error code (docs/errors.md)"},
        "hint": {"type": "string", "description": "what to do next"},
    },
}
_FASTAPI_SCHEMAS = ("HTTPValidationError", "ValidationError")
_BAD_REQUEST = {
    "description": "Invalid request (E2xx)",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


class ContacthubErrorsApp(FastAPI):
    """A FastAPI app whose OpenAPI document has ``400`` and the error body in place of ``422``."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = _with_error_body(super().openapi())
        return self.openapi_schema


def _with_error_body(schema: dict[str, Any]) -> dict[str, Any]:
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            if operation.get("responses", {}).pop("422", None) is not None:
                operation["responses"]["400"] = _BAD_REQUEST
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_SCHEMAS:
        components.pop(name, None)
    components["Error"] = ERROR_SCHEMA
    return schema
