"""Entity tags of keys and the conditions ``If-Match`` / ``If-None-Match`` name (RFC 9110 8.8.3, 13.1).

A key's tag is the engine's tag of the record that holds its value (``DB.get_with_tag``): every write
of the key gives it another one, and every process serving the store answers the same one. It is a
strong tag, written ``"<16 hex digits>"``.

A condition header is parsed into :data:`ANY` (``*``) or a list of ``(weak, tag)`` pairs, ``tag``
with its quotes. ``If-Match`` compares strongly (a weak tag never matches), ``If-None-Match`` weakly
(``W/"x"`` matches ``"x"``), as RFC 9110 has it.
"""

from __future__ import annotations

import re

__all__ = ["ANY", "Condition", "format_tag", "if_match_holds", "if_none_match_holds", "parse_condition"]

ANY = "*"
Condition = str | list[tuple[bool, str]] | None  # None: the header was not sent

# entity-tag = [ W/ ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E / obs-text; a list is comma-separated
_TAG = re.compile(r'[ \t]*(W/)?("[\x21\x23-\x7e\x80-\xff]*")[ \t]*(?:,|$)')


def format_tag(tag: int) -> str:
    """The ``ETag`` field value of an engine tag."""
    return f'"{tag:016x}"'


def parse_condition(lines: list[str], name: str) -> Condition:
    """Parse the lines of an ``If-Match`` or ``If-None-Match`` header (they add up to one list).

    Raises ValueError, with a message for the client, for a malformed value: ignoring it would
    turn a conditional write into an unconditional one.
    """
    if not lines:
        return None
    if all(line.strip() == "*" for line in lines):  # (sent twice, "*" is still "*")
        return ANY
    value = ",".join(lines)
    tags: list[tuple[bool, str]] = []
    pos = 0
    while pos < len(value):
        if value[pos] in " \t,":  # empty list elements are allowed (RFC 9110 5.6.1)
            pos += 1
            continue
        found = _TAG.match(value, pos)
        if found is None:
            raise ValueError(
                f"{name} must be '*' or a list of entity tags such as \"0000001a2b3c4d5e\" (with the "
                f"quotes, as the ETag header gives them; W/ before one marks it weak), not {value[:60]!r}"
            )
        tags.append((found.group(1) is not None, found.group(2)))
        pos = found.end()
    if not tags:
        raise ValueError(f"{name} is empty: send '*' or entity tags such as \"0000001a2b3c4d5e\"")
    return tags


def if_match_holds(condition: Condition, current: str | None) -> bool:
    """Whether ``If-Match`` holds for a key whose tag is ``current`` (None: the key does not exist)."""
    if condition is None:
        return True
    if current is None:
        return False
    if isinstance(condition, str):  # ANY
        return True
    return any(not weak and tag == current for weak, tag in condition)


def if_none_match_holds(condition: Condition, current: str | None) -> bool:
    """Whether ``If-None-Match`` holds for a key whose tag is ``current`` (None: it does not exist)."""
    if condition is None or current is None:
        return True
    if isinstance(condition, str):  # ANY
        return False
    return all(tag != current for _, tag in condition)
