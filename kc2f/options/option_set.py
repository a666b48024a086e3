"""`OptionSet`: a frozen dataclass of typed, checked options, and `option`, the field that declares one."""

import dataclasses
import math

import yaml

_NULL = ("null", "none")


def option(default, help, kind, nullable=False, choices=None, at_least=None, above=None, at_most=None,
           below=None):
    """A dataclass field carrying its parse kind, nullability, choices, bounds and help text.

    Args:
        default: the option's default.
        help: one line for `--help`, `kc2f models` and the docs.
        kind: `int`, `float`, `str`, `bool` or `"ints"` (a list of integers,
            held as a tuple).
        nullable: whether `None` is a value (usually "the recipe's" or "auto").
        choices: the values allowed, or `None`.
        at_least, above, at_most, below: bounds of a number (closed and open);
            every float option must also be finite.
    """
    return dataclasses.field(
        default=default,
        metadata={"help": help, "kind": kind, "nullable": nullable, "choices": choices,
                  "bounds": (at_least, above, at_most, below)},
    )


def parse_ints(text, name):
    """`"4,2,1"` (or a list) -> `(4, 2, 1)`; ValueError naming `name` otherwise.

    The one parser of comma-separated integer lists (factors, phase epochs,
    patch sizes, CLI lists).
    """
    message = f"Option '{name}' expects comma-separated integers. Received: {name}={text!r}"
    if isinstance(text, (list, tuple)):
        if not all(isinstance(item, int) and not isinstance(item, bool) for item in text):
            raise ValueError(message)
        return tuple(text)
    try:
        values = tuple(int(item.strip()) for item in str(text).split(",") if item.strip())
    except ValueError:
        raise ValueError(message) from None
    return values


def type_name(kind, nullable):
    """`"int"`, `"list of integers or null"`, ...: how messages and `kc2f models` name a kind."""
    name = "list of integers" if kind == "ints" else kind.__name__
    return f"{name} or null" if nullable else name


def _number(text, kind):
    """`text` as a number of `kind` the way a user writes it, or `text` unchanged if it is none.

    YAML 1.1 (PyYAML) reads `0.9e12` and `1e-4` as strings (its floats need a dot
    and a signed exponent); Python's `float` and `int` read them as written. An
    integer option takes an integral float too (`1e3`).
    """
    try:
        return kind(text.strip())
    except ValueError:
        pass
    if kind is int:
        try:
            number = float(text.strip())
        except ValueError:
            return text
        if number.is_integer():
            return int(number)
    return text


def coerce(field, value):
    """`value` checked and converted to `field`'s kind; ValueError naming the option."""
    name, meta = field.name, field.metadata
    kind = meta["kind"]
    if value is None:
        if meta["nullable"]:
            return None
        raise ValueError(f"Option '{name}' expects {type_name(kind, False)}. Received: {name}=None")
    if kind == "ints":
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"Option '{name}' expects a list of integers. Received: {name}={value!r}")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValueError(f"Option '{name}' expects a list of integers. Received: {name}={value!r}")
        return tuple(value)
    if kind in (int, float) and isinstance(value, str):
        value = _number(value, kind)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise ValueError(
            f"Option '{name}' expects {type_name(kind, meta['nullable'])}. Received: {name}={value!r}"
        )
    if meta["choices"] is not None and value not in meta["choices"]:
        raise ValueError(f"Option '{name}' must be one of {meta['choices']}. Received: {name}={value!r}")
    if kind is float and not math.isfinite(value):
        raise ValueError(f"Option '{name}' must be a finite number. Received: {name}={value!r}")
    at_least, above, at_most, below = meta.get("bounds", (None,) * 4)
    for bound, holds, words in ((at_least, lambda b: value >= b, ">="), (above, lambda b: value > b, ">"),
                                (at_most, lambda b: value <= b, "<="), (below, lambda b: value < b, "<")):
        if bound is not None and not holds(bound):
            raise ValueError(f"Option '{name}' must be {words} {bound:g}. Received: {name}={value!r}")
    return value


def parse_text(field, text):
    """The text of `--set name=text` parsed into `field`'s kind (YAML scalars: `null`, `1e-4`, `true`)."""
    meta = field.metadata
    name = field.name
    if text.strip().lower() in _NULL and meta["nullable"]:
        return None
    if meta["kind"] == "ints":
        return parse_ints(text, name)
    if meta["kind"] is str:
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    return coerce(field, value)


class OptionSet:
    """Base of a frozen dataclass of `option` fields: every field is checked and converted on construction.

    Subclasses are declared with `@dataclasses.dataclass(frozen=True)`; `replace`
    makes a changed copy, `to_dict` the JSON form, `from_dict` reads it back
    with unknown names refused. `NESTED` names fields that hold another
    option set, which the subclass resolves.
    """

    # Fields holding another option set, which the subclass resolves itself.
    NESTED = ()

    def __post_init__(self):
        for field in self.fields():
            if field.name in self.NESTED:
                continue
            object.__setattr__(self, field.name, coerce(field, getattr(self, field.name)))

    @classmethod
    def fields(cls):
        return dataclasses.fields(cls)

    @classmethod
    def names(cls):
        """The options' names, in declaration order."""
        return tuple(field.name for field in cls.fields())

    @classmethod
    def field(cls, name):
        """The field of option `name`; ValueError naming the known options otherwise."""
        for field in cls.fields():
            if field.name == name:
                return field
        raise ValueError(f"Unknown option '{name}'. Known options: {', '.join(sorted(cls.names()))}")

    @classmethod
    def parse_value(cls, name, text):
        """The text of `--set name=text` parsed into the option's type (`null`: `None` where allowed)."""
        return parse_text(cls.field(name), text)

    @classmethod
    def from_dict(cls, options, source="options"):
        """An instance from a mapping of options; an unknown name is an error naming `source`."""
        if not isinstance(options, dict):
            raise ValueError(f"Options in {source} must be a mapping of options. Received: {options!r}")
        unknown = sorted(set(options) - set(cls.names()))
        if unknown:
            raise ValueError(f"Unknown option '{unknown[0]}' in {source}. "
                             f"Known options: {', '.join(sorted(cls.names()))}")
        return cls(**options)

    @classmethod
    def describe(cls):
        """One dict per option (name, type, default, choices, help), in declaration order: what
        `kc2f models` prints."""
        return [{"name": field.name, "type": type_name(field.metadata["kind"], field.metadata["nullable"]),
                 "default": list(field.default) if isinstance(field.default, tuple) else field.default,
                 "choices": list(field.metadata["choices"]) if field.metadata["choices"] else None,
                 "help": field.metadata["help"]} for field in cls.fields()]

    def replace(self, **changes):
        """A copy with `changes` applied (checked)."""
        unknown = sorted(set(changes) - set(self.names()))
        if unknown:
            raise ValueError(f"Unknown option '{unknown[0]}'. "
                             f"Known options: {', '.join(sorted(self.names()))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """JSON-ready options (tuples as lists)."""
        return {field.name: _json_ready(getattr(self, field.name)) for field in self.fields()}


def _json_ready(value):
    if isinstance(value, OptionSet):
        return value.to_dict()
    return list(value) if isinstance(value, tuple) else value
