"""A quicker constructor for the frozen, slotted dataclasses made by the hundred per invoice.

`@dataclass(frozen=True, slots=True)` generates an `__init__` that sets every field through
`object.__setattr__` (the class's own `__setattr__` refuses). That generic path looks the attribute
up on the type each time, and costs about four times a plain assignment: the billing run makes some
two hundred such values per invoice, a sixth of its Python time. `quick_init` replaces that
`__init__` with one that does exactly the same but sets each slot through its own descriptor, about
40 % quicker:

- the same parameters in the same order and kinds (positional, defaults, `kw_only`), the same
  defaults and default factories, fields with `init=False` set to their default as before, and
  `__post_init__` called last, as before;
- the class stays what it was: frozen (assignment still raises `FrozenInstanceError`), hashable,
  comparable, picklable, and `dataclasses.replace` works through the new `__init__`.

Only for `@dataclass(frozen=True, slots=True)` classes without `InitVar`s; anything else is refused
when the class is defined. `tests/core/test_frozen.py` holds the two constructors to the same results.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, TypeVar

__all__ = ["quick_init"]

T = TypeVar("T", bound=type)


def quick_init(cls: T) -> T:
    """Give the frozen, slotted dataclass `cls` the quicker `__init__` (place it above `@dataclass`)."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in vars(cls):
        raise TypeError(f"quick_init wants a @dataclass(frozen=True, slots=True) class, not {cls.__name__}")
    fields = dataclasses.fields(cls)
    # An InitVar is a parameter of the generated __init__ but no field (`fields` leaves it out).
    generated = set(inspect.signature(vars(cls)["__init__"]).parameters) - {"self"}
    if generated != {field.name for field in fields if field.init}:
        raise TypeError(f"quick_init does not handle InitVar fields ({cls.__name__})")
    namespace: dict[str, Any] = {"MISSING": dataclasses.MISSING}
    positional: list[str] = []
    keyword: list[str] = []
    body: list[str] = []
    for field in fields:
        setter = f"_set_{field.name}"
        namespace[setter] = vars(cls)[field.name].__set__  # the slot's member descriptor
        if field.init:
            if field.default is not dataclasses.MISSING:
                namespace[f"_default_{field.name}"] = field.default
                parameter = f"{field.name}=_default_{field.name}"
                value = field.name
            elif field.default_factory is not dataclasses.MISSING:
                namespace[f"_factory_{field.name}"] = field.default_factory
                parameter = f"{field.name}=MISSING"
                value = f"_factory_{field.name}() if {field.name} is MISSING else {field.name}"
            else:
                parameter = field.name
                value = field.name
            (keyword if field.kw_only else positional).append(parameter)
        elif field.default is not dataclasses.MISSING:
            namespace[f"_default_{field.name}"] = field.default
            value = f"_default_{field.name}"
        elif field.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{field.name}"] = field.default_factory
            value = f"_factory_{field.name}()"
        else:
            continue  # set by __post_init__, as the generated __init__ leaves it
        body.append(f"    {setter}(self, {value})")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    parameters = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    source = f"def __init__({parameters}):\n" + ("\n".join(body) or "    pass") + "\n"
    exec(source, namespace)  # noqa: S102 - generated from the class's own fields, as dataclasses does
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = vars(cls)["__init__"].__doc__
    setattr(cls, "__init__", init)  # noqa: B010 - replacing a method mypy would call unsound to assign
    return cls
