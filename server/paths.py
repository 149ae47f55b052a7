"""What makes a path (a chain of components) acceptable: named, unique slots, a valid input spec, an embedding
first and a head last. The domain's checks; they raise InvalidArgumentError with what was wrong."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from munet_serve.artifacts import ComponentKind
from munet_serve.errors import InvalidArgumentError
from munet_serve.imaging import METHOD_MEAN, METHOD_STD, InputSpec

from .records import InputFields, Slots


def slots(components: Iterable[tuple[str, str]], what: str) -> Slots:
    """The (name, id) slots of a path or of the root, each named and with an id, the names unique."""
    result = tuple((name, cid) for name, cid in components)
    names = [n for n, _ in result]
    if any(not n for n in names) or any(not c for _, c in result):
        raise InvalidArgumentError(f"{what}: every component needs a name and an id")
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"{what}: component names must be unique, got {names}")
    return result


def input_spec(fields: InputFields, what: str) -> InputSpec:
    try:
        return InputSpec(
            image_size=fields.image_size,
            mean=fields.mean or METHOD_MEAN,  # type: ignore[arg-type]
            std=fields.std or METHOD_STD,  # type: ignore[arg-type]
        )
    except ValueError as e:
        raise InvalidArgumentError(f"{what}: invalid input spec: {e}") from e


def check_ends(kinds: Sequence[tuple[str, ComponentKind]]) -> None:
    """A path of (id, kind) pairs must start with an embedding and end with a head."""
    if not kinds or kinds[0][1] != ComponentKind.EMBEDDING or kinds[-1][1] != ComponentKind.HEAD:
        raise InvalidArgumentError(
            f"a path must start with an embedding and end with a head, got {[k.value for _, k in kinds]}"
        )
