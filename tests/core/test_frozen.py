"""`quick_init` builds the very values the dataclass-generated `__init__` builds, only quicker."""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tally.core.frozen import quick_init


def _twins(**options: Any) -> tuple[type, type]:
    """The same class twice: as @dataclass generates it, and with `quick_init`."""

    def make() -> type:
        @dataclass(frozen=True, slots=True, **options)
        class Value:
            first: int
            second: str = "two"
            third: tuple[int, ...] = field(default_factory=tuple)
            hidden: int = field(default=7, init=False)
            listed: list[int] = field(default_factory=list, init=False, compare=False)
            late: int = field(default=0, kw_only=True)

            def __post_init__(self) -> None:
                if self.first < 0:
                    raise ValueError("first must not be negative")

        return Value

    return make(), quick_init(make())


PLAIN, QUICK = _twins()
KW_PLAIN, KW_QUICK = _twins(kw_only=True)


def _state(value: Any) -> tuple[Any, ...]:
    return tuple(getattr(value, each.name) for each in dataclasses.fields(value))


calls = st.tuples(
    st.integers(min_value=-3, max_value=3),
    st.one_of(st.none(), st.text(max_size=3)),
    st.one_of(st.none(), st.tuples(st.integers())),
    st.one_of(st.none(), st.integers()),
    st.booleans(),
)


def _call(
    cls: type, first: int, second: str | None, third: tuple[int, ...] | None, late: int | None, by_name: bool
) -> tuple[Any, ...]:
    kwargs: dict[str, Any] = {}
    args: list[Any] = []
    if by_name:
        kwargs["first"] = first
    else:
        args.append(first)
    if second is not None:
        kwargs["second"] = second
    if third is not None:
        kwargs["third"] = third
    if late is not None:
        kwargs["late"] = late
    try:
        return ("made", _state(cls(*args, **kwargs)))
    except (TypeError, ValueError) as error:
        return ("refused", type(error).__name__, str(error))


@given(calls)
def test_the_same_values_and_refusals_as_the_generated_init(call: tuple[Any, ...]) -> None:
    assert _call(QUICK, *call) == _call(PLAIN, *call)
    assert _call(KW_QUICK, *call) == _call(KW_PLAIN, *call)


def test_defaults_factories_and_fields_outside_init() -> None:
    value = QUICK(1)
    assert _state(value) == (1, "two", (), 7, [], 0)
    assert value.listed is not QUICK(1).listed  # a fresh list each time, as with the factory


def test_still_frozen_hashable_equal_picklable_and_replaceable() -> None:
    value = QUICK(1, "b", (2,), late=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.first = 2
    assert value == QUICK(1, "b", (2,), late=3)
    assert hash(value) == hash(QUICK(1, "b", (2,), late=3))
    assert dataclasses.replace(value, first=5) == QUICK(5, "b", (2,), late=3)
    with pytest.raises(ValueError, match="negative"):
        dataclasses.replace(value, first=-1)


def test_the_same_refusals_for_missing_and_unknown_arguments() -> None:
    with pytest.raises(TypeError, match="first"):
        QUICK()
    with pytest.raises(TypeError, match="unknown"):
        QUICK(1, unknown=2)
    with pytest.raises(TypeError):
        QUICK(1, "b", (), 4)  # `late` is keyword-only
    with pytest.raises(TypeError):
        KW_QUICK(1)  # every field keyword-only


def test_refuses_classes_it_cannot_stand_for() -> None:
    @dataclass(frozen=True)
    class NoSlots:
        value: int

    @dataclass(slots=True)
    class NotFrozen:
        value: int

    @dataclass(frozen=True, slots=True)
    class WithInitVar:
        value: int
        scale: dataclasses.InitVar[int] = 1

        def __post_init__(self, scale: int) -> None:
            object.__setattr__(self, "value", self.value * scale)

    for cls in (NoSlots, NotFrozen, int, WithInitVar):
        with pytest.raises(TypeError, match="quick_init"):
            quick_init(cls)


def test_the_billing_values_use_it() -> None:
    from tally.core.invoicing.lines import LineKey
    from tally.core.periods import Period
    from tally.core.rejections import InvariantViolation

    for cls in (Period, LineKey):
        assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__"
        assert "__setattr__" not in cls.__init__.__code__.co_names  # the generated one calls it per field
    period = Period(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    assert pickle.loads(pickle.dumps(period)) == period  # workers send such values back
    with pytest.raises(InvariantViolation):
        Period(period.end, period.start)
