"""Saved results of the store (a chain report, a backup manifest) as versioned JSON."""
from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, ClassVar, TypeVar

T = TypeVar("T", bound="VersionedJson")


class VersionedJson:
    """A frozen dataclass mix-in: `to_json` with its `schema_version`, `from_json` refusing other versions."""

    SCHEMA_VERSION: ClassVar[int] = 1
    schema_version: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)  # type: ignore[call-overload]

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        """The object saved in `text`; ValueError for another schema version or other fields."""
        data: dict[str, Any] = json.loads(text)
        if data.get("schema_version") != cls.SCHEMA_VERSION:
            raise ValueError(f"{cls.__name__} schema {data.get('schema_version')!r}, expected {cls.SCHEMA_VERSION}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValueError(f"not a {cls.__name__}: {exc}") from exc
