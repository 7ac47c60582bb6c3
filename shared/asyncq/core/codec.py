"""Codecs: how a queue's typed items become the JSON value its envelope carries, and back. Never pickle: the
queue is shared with other machines, and unpickling is code execution.

``JsonCodec`` (the default) passes JSON values through as they are. ``PydanticCodec(Model)`` carries pydantic
models (``pip install 'asyncq[pydantic]'``); any object with ``encode(item) -> JSON value`` and
``decode(value) -> item`` is a codec.
"""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")
M = TypeVar("M")


class Codec(Protocol[T]):
    def encode(self, item: T) -> Any:
        """The JSON value (dict, list, str, number, bool, None) that stands for ``item``."""
        ...

    def decode(self, value: Any) -> T:
        """The item a JSON value read from the queue stands for; raise ``ValueError`` if it stands for none."""
        ...


class JsonCodec(Generic[T]):
    """Items are JSON values already (tuples come back as lists, as JSON has no tuples)."""

    def encode(self, item: T) -> Any:
        return item

    def decode(self, value: Any) -> T:
        return value  # type: ignore[no-any-return]


class PydanticCodec(Generic[M]):
    """Items are instances of the pydantic model ``model``: ``model_dump(mode="json")`` on the way in,
    ``model_validate`` (which checks the fields) on the way out."""

    def __init__(self, model: type[M]) -> None:
        if not hasattr(model, "model_validate"):
            raise TypeError(f"{model!r} is not a pydantic (v2) model class")
        self.model = model

    def encode(self, item: M) -> Any:
        return item.model_dump(mode="json")  # type: ignore[attr-defined]

    def decode(self, value: Any) -> M:
        return self.model.model_validate(value)  # type: ignore[attr-defined, no-any-return]
