"""Typed identifiers: a SessionId can never be passed where a TokenId is expected."""

from __future__ import annotations

import os
import uuid
from typing import Any, Self

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

from ._errors import BadInputError

__all__ = ["TypedId", "SessionId", "TokenId", "AuditEntryId", "RequestId", "CapsuleId"]


class TypedId(uuid.UUID):
    """A UUID with a type of its own. Serializes as the canonical lowercase hyphenated string."""

    __slots__ = ()

    @classmethod
    def new(cls) -> Self:
        return cls(bytes=os.urandom(16), version=4)  # what uuid.uuid4() does, in one step

    @classmethod
    def parse(cls, text: str | uuid.UUID) -> Self:
        if isinstance(text, TypedId) and not isinstance(text, cls):
            raise BadInputError(
                f"{cls.__name__}: got a {type(text).__name__}; ids of different kinds never mix"
            )
        if isinstance(text, uuid.UUID):
            return cls(int=text.int)
        try:
            parsed = uuid.UUID(text)
        except (ValueError, TypeError, AttributeError) as exc:
            raise BadInputError(
                f"{cls.__name__}: {text!r} is not a UUID",
                hint="ids look like 3f2b8c1e-5d6a-4e7f-9a0b-1c2d3e4f5a6b",
            ) from exc
        if str(parsed) != text:
            # Braces, urn: prefixes, upper case and missing hyphens parse, but two spellings of
            # one id would let a caller dodge exact-match checks; accept only the canonical form.
            raise BadInputError(f"{cls.__name__}: {text!r} is not in canonical UUID form")
        return cls(int=parsed.int)

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self}')"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(str),
            json_schema_input_schema=core_schema.str_schema(),
        )

    @classmethod
    def _validate(cls, value: object) -> Self:
        # Raise ValueError here, not BadInputError: pydantic only turns ValueError into a
        # ValidationError that names the field.
        if isinstance(value, cls):
            return value
        if not isinstance(value, str | uuid.UUID):
            raise ValueError(f"{cls.__name__}: expected a UUID string, got {type(value).__name__}")
        try:
            return cls.parse(value)  # parse() refuses other TypedId kinds
        except BadInputError as exc:
            raise ValueError(exc.message) from None


class SessionId(TypedId):
    __slots__ = ()


class TokenId(TypedId):
    __slots__ = ()


class AuditEntryId(TypedId):
    __slots__ = ()


class RequestId(TypedId):
    __slots__ = ()


class CapsuleId(TypedId):
    __slots__ = ()
