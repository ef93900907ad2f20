"""Settings sections of model-config.yaml -> frozen dataclasses, refusing unknown keys."""

from __future__ import annotations


def from_mapping(cls, values: dict | None, what: str):
    """``cls(**values)``, but a key ``cls`` does not have is an error naming it (typos must not pass silently)."""
    values = dict(values or {})
    known = set(cls.__dataclass_fields__)
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown {what}(s) {sorted(unknown)}; known: {sorted(known)}")
    return cls(**values)
