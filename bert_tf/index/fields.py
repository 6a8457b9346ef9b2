"""Per-text fields (`source`, `date`, `author`, ...): their types, `--where` conditions and `--by` groups.

An index keeps, beside each text, the scalar fields it came with (the other keys of a
JSON Lines record, the input file of a text file). They live in the index's SQLite as
rows `(text_id, name, value)` with SQLite's own typing, and one row per field name in
`field_types` saying what the values are ("str", "int", "float", "bool" or "mixed").

`parse_where` reads a small grammar, never SQL::

    where := condition ("and" condition)*
    condition := FIELD OP VALUE        OP: = != < <= > >=
    VALUE := 'quoted string' | "quoted string" | number | true | false

and `where_query` turns it into a parameterised query over the known fields only: a
value is always a bound parameter and a field name is only ever one of the names the
index already holds, so nothing a person types is pasted into SQL. A text without the
field never matches a condition on it (as SQL's NULL).

`--by` names a field (each distinct value is a group) or buckets a date field by
`year` or `month` (`date:year`; plain `year` / `month` mean the field `date`, unless
the index has a field of that name).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from typing import Mapping

from bert_tf.embed.corpus_format import FILE_FIELD, RECORD_KEYS, record_fields  # noqa: F401 - re-exported
from bert_tf.errors import InvalidType, InvalidValue

#: The types a field's values may have, as `field_types` records them.
FIELD_TYPES = ("str", "int", "float", "bool", "mixed")
#: The comparison operators of `--where`.
OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
#: Date buckets of `--by`.
BUCKETS = ("year", "month")
#: The field `--by year` / `--by month` bucket when no field is named.
DATE_FIELD = "date"

SCHEMA = """
CREATE TABLE fields (text_id INTEGER NOT NULL, name TEXT NOT NULL, value);
CREATE TABLE field_types (name TEXT PRIMARY KEY, type TEXT NOT NULL, texts INTEGER NOT NULL);
"""
INDEXES = "CREATE INDEX fields_name_value ON fields (name, value, text_id);"


def type_name(value) -> str:
    """The `FIELD_TYPES` name of one scalar value.

    Raises:
        TypeError: a value that is not a str, int, float or bool (a list, a dict, ...).
    """
    if isinstance(value, bool):  # before int: a bool is an int to Python
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    raise InvalidType(f"a field value must be a str, int, float or bool; got {type(value).__name__}")


def merge_types(a: str | None, b: str) -> str:
    """The type of a field holding values of types `a` (None: none yet) and `b`: ints and floats make "float"."""
    if a is None or a == b:
        return b
    if {a, b} == {"int", "float"}:
        return "float"
    return "mixed"


def check_fields(fields: Mapping | None) -> dict:
    """The fields of one text, checked: str names, scalar values (None values left out).

    Raises:
        TypeError: a name that is not a non-empty str, or a value that is not a scalar.
    """
    if fields is None:
        return {}
    if not isinstance(fields, Mapping):
        raise InvalidType(f"a text's fields must be a dict of name to value; got {type(fields).__name__}")
    out = {}
    for name, value in fields.items():
        if not isinstance(name, str) or not name:
            raise InvalidType(f"a field name must be a non-empty str; got {name!r}")
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue  # missing: matches no condition, as in SQL
        type_name(value)
        out[name] = value
    return out


# ---------------------------------------------------------------------- JSON Lines records


def is_json_lines(path: str | os.PathLike) -> bool:
    """Whether an input is JSON Lines by its name (`.jsonl`, `.json`), as `beam-embed` decides."""
    return os.fspath(path).lower().endswith((".jsonl", ".json"))


def json_record(line: str) -> tuple[object, str, dict, list[str]]:
    """`(id or None, text, fields, names of fields left out)` of one JSON Lines record.

    The record is an object with a string `text`; `id` (a string or integer) is optional;
    its fields are `record_fields`' (the rule `beam-embed` follows too: null is missing, a
    list or object is left out and named, so the caller can say so once).

    Raises:
        ValueError: not JSON, not an object, or no string `text` (the message says which).
    """
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise InvalidValue(f"not valid JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(obj, dict):
        raise InvalidValue(f"a JSON Lines record is an object with a \"text\"; got {type(obj).__name__}")
    text = obj.get("text")
    if not isinstance(text, str):
        raise InvalidValue('no "text" string in the record' if text is None else
                         f'"text" is {type(text).__name__}, expected a string')
    key = obj.get("id")
    if key is not None and (isinstance(key, bool) or not isinstance(key, (str, int))):
        raise InvalidValue(f'"id" is {type(key).__name__}, expected a string or an integer')
    fields, dropped = record_fields(obj)
    return key, text, fields, dropped


# ---------------------------------------------------------------------- --where


@dataclasses.dataclass(frozen=True)
class Condition:
    """One `FIELD OP VALUE` of a `--where`."""

    field: str
    op: str
    value: object  # str, int, float or bool

    def matches(self, fields: Mapping) -> bool:
        """Whether a text with these fields satisfies the condition (a missing field never does)."""
        if self.field not in fields:
            return False
        value = fields[self.field]
        if isinstance(self.value, str) != isinstance(value, str):
            return False  # a "mixed" field: a number never equals nor orders with a string here
        return {"=": value == self.value, "!=": value != self.value, "<": value < self.value,
                "<=": value <= self.value, ">": value > self.value, ">=": value >= self.value}[self.op]


_TOKEN = re.compile(r"""\s*(?:
    (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
  | (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)(?![\w.])
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<word>[A-Za-z_][\w.\-]*)
  | (?P<bad>\S+)
)""", re.VERBOSE)


def _tokens(text: str) -> list[tuple[str, str]]:
    out = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:  # only trailing blanks are left
            break
        kind = match.lastgroup
        out.append((kind, match.group(kind)))
        position = match.end()
    return out


def parse_where(text: str) -> list[Condition]:
    """The conditions of a `--where` expression (joined by `and`).

    Example:
        >>> parse_where("source = 'nyt' and year >= 2000")
        [Condition(field='source', op='=', value='nyt'), Condition(field='year', op='>=', value=2000)]

    Raises:
        ValueError: anything outside the grammar (the message shows the grammar).
    """
    grammar = ("write FIELD OP VALUE joined by 'and', OP one of = != < <= > >=, VALUE a 'quoted string', "
               "a number, true or false; e.g. \"source = 'nyt' and year >= 2000\"")
    if not isinstance(text, str) or not text.strip():
        raise InvalidValue(f"--where is empty: {grammar}")
    tokens = _tokens(text)
    conditions = []
    i = 0
    while True:
        part = tokens[i:i + 3]
        if len(part) < 3 or part[0][0] not in ("word", "string") or part[1][0] != "op" \
                or part[2][0] not in ("string", "number", "word"):
            shown = " ".join(t for _, t in tokens[i:i + 3]) or "the end"
            raise InvalidValue(f"--where cannot be read at {shown!r}: {grammar}")
        (field_kind, field), (_, op), (value_kind, raw) = part
        if field_kind == "string":
            if field[0] != '"':
                raise InvalidValue(f"--where: {field} is a value, not a field name (quote field names with \"...\"): "
                                 f"{grammar}")
            field = field[1:-1].replace('""', '"')
        op = {"==": "=", "<>": "!="}.get(op, op)
        if value_kind == "string":
            value = raw[1:-1].replace(raw[0] * 2, raw[0])
        elif value_kind == "number":
            value = float(raw) if any(c in raw for c in ".eE") else int(raw)
        elif raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            raise InvalidValue(f"--where: the value {raw!r} must be quoted ('{raw}') unless it is a number, true or "
                             f"false")
        conditions.append(Condition(field, op, value))
        i += 3
        if i == len(tokens):
            return conditions
        if tokens[i] != ("word", tokens[i][1]) or tokens[i][1].lower() != "and":
            raise InvalidValue(f"--where: expected 'and' before {tokens[i][1]!r} (only 'and' joins conditions): "
                             f"{grammar}")
        i += 1


def known_fields_line(types: Mapping[str, str]) -> str:
    """The fields an index knows, for error messages."""
    if not types:
        return "this index has no fields (build it from JSON Lines with fields beside \"text\")"
    return "its fields are " + ", ".join(f"{name} ({kind})" for name, kind in sorted(types.items()))


def check_field(name: str, types: Mapping[str, str], *, option: str = "--where") -> None:
    """Refuses a field the index does not hold, listing those it does."""
    if name not in types:
        raise InvalidValue(f"{option}: the index has no field {name!r}; {known_fields_line(types)}")


def where_query(conditions: list[Condition], types: Mapping[str, str]) -> tuple[str, list]:
    """`(sql, params)`: a query of the ids of the texts that satisfy every condition.

    Raises:
        ValueError: an unknown field, or a value of another type than the field's.
    """
    parts, params = [], []
    for c in conditions:
        check_field(c.field, types)
        kind = types[c.field]
        value = c.value
        if kind == "str" and not isinstance(value, str):
            raise InvalidValue(f"--where: {c.field} holds strings: quote the value ({c.field} {c.op} '{value}')")
        if kind in ("int", "float") and (isinstance(value, (str, bool))):
            raise InvalidValue(f"--where: {c.field} holds numbers; got {value!r}")
        if kind == "bool":
            if not isinstance(value, bool):
                raise InvalidValue(f"--where: {c.field} holds true or false; got {value!r}")
            value = int(value)
        # `op` is one of OPERATORS (the parser admits no other), the name and the value are bound parameters.
        assert c.op in OPERATORS
        if kind == "mixed":  # never compare a number with a string (SQLite would order them, Python refuses)
            typed = "typeof(value) = 'text'" if isinstance(value, str) else "typeof(value) != 'text'"
            parts.append(f"SELECT text_id FROM fields WHERE name = ? AND {typed} AND value {c.op} ?")
        else:
            parts.append(f"SELECT text_id FROM fields WHERE name = ? AND value {c.op} ?")
        params.extend([c.field, value])
    return " INTERSECT ".join(parts), params


# ---------------------------------------------------------------------- --by


@dataclasses.dataclass(frozen=True)
class Grouping:
    """What `--by` names: a field, and a date bucket of it (None: its values as they are)."""

    field: str
    bucket: str | None = None

    @property
    def name(self) -> str:
        return self.field if self.bucket is None else f"{self.field}:{self.bucket}"

    def label(self, value) -> str | None:
        """The group of one value (None: it has none, e.g. not a date)."""
        if self.bucket is None:
            return json.dumps(value) if isinstance(value, bool) else str(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value) if self.bucket == "year" and 0 < value < 10000 else None
        if isinstance(value, str):
            match = re.match(r"(\d{4})(?:-(\d{2}))?", value.strip())
            if match and self.bucket == "year":
                return match.group(1)
            if match and match.group(2):
                return f"{match.group(1)}-{match.group(2)}"
        return None


def group_order(label: str):
    """A sort key: groups in numeric order when they are numbers (years), else alphabetically."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def parse_by(by: str, types: Mapping[str, str]) -> Grouping:
    """The grouping `--by` names: FIELD, year, month, FIELD:year or FIELD:month.

    Raises:
        ValueError: an unknown field or bucket (listing the fields).
    """
    if not isinstance(by, str) or not by.strip():
        raise InvalidValue(f"--by is empty: give a field; {known_fields_line(types)}")
    by = by.strip()
    if by in types:
        return Grouping(by)
    field, _, bucket = by.rpartition(":")
    if not field and by in BUCKETS:
        field, bucket = DATE_FIELD, by
        if field not in types:
            raise InvalidValue(f"--by {by} buckets the field {DATE_FIELD!r}, which the index does not have (name "
                             f"another as FIELD:{by}); {known_fields_line(types)}")
    if field:
        if bucket not in BUCKETS:
            raise InvalidValue(f"--by {by}: the bucket must be one of {', '.join(BUCKETS)}; got {bucket!r}")
        check_field(field, types, option="--by")
        return Grouping(field, bucket)
    check_field(by, types, option="--by")
    return Grouping(by)  # not reached: check_field raised
