"""A small udev rule evaluator for the subset of udev(7) that deploy/70-skelly.rules uses.

It reads rule files and ``udevadm info --attribute-walk`` output (the device, then each parent,
every attribute written in rule-key syntax) and answers what udev would do with that device:
which symlinks, group, mode and ENV properties the rules give it.  Semantics followed from
udev(7):

* keys of the device itself: ``KERNEL``, ``SUBSYSTEM``, ``DRIVER``, ``ATTR{x}``, ``ENV{x}``;
* parent keys ``KERNELS``, ``SUBSYSTEMS``, ``DRIVERS``, ``ATTRS{x}``: all of them in one rule must
  match on ONE device of the chain (the device itself or one parent);
* values are shell globs (``*``, ``?``, ``[...]``) with ``|`` between alternatives; ``!=`` negates;
* ``SYMLINK+=`` adds a link, ``GROUP=`` / ``MODE=`` / ``ENV{x}=`` assign (a later rule wins,
  ``:=`` makes it final).

Anything outside the subset — an unknown key, an operator a key does not take, an unquoted
value, a missing comma — raises :class:`RuleError`, so a typo cannot pass as "no match".
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

DEVICE_KEYS = {"KERNEL", "SUBSYSTEM", "DRIVER", "ATTR", "ENV", "ACTION"}
PARENT_KEYS = {"KERNELS", "SUBSYSTEMS", "DRIVERS", "ATTRS"}
ASSIGN_KEYS = {"SYMLINK", "GROUP", "OWNER", "MODE", "ENV", "TAG"}
WITH_ATTRIBUTE = {"ATTR", "ATTRS", "ENV"}
MATCH_OPS = {"==", "!="}
ASSIGN_OPS = {"=", "+=", "-=", ":="}

_TOKEN = re.compile(
    r'\s*(?P<key>[A-Z_]+)(?:\{(?P<attr>[^}]+)\})?\s*(?P<op>==|!=|\+=|-=|:=|=)\s*"'
    r'(?P<value>[^"]*)"\s*(?P<sep>,|$)'
)
_WALK_HEADER = re.compile(r"^\s*looking at (?:parent )?device '(?P<path>[^']+)':\s*$")
_WALK_LINE = re.compile(r'^\s*(?P<key>[A-Z]+)(?:\{(?P<attr>[^}]+)\})?=="(?P<value>.*)"\s*$')


class RuleError(ValueError):
    """A rule line outside the understood subset (most likely a typo)."""


@dataclass(frozen=True, slots=True)
class Key:
    name: str
    attr: str | None
    op: str
    value: str


@dataclass(frozen=True, slots=True)
class Rule:
    source: str
    keys: tuple[Key, ...]


@dataclass
class Node:
    """One device of an attribute walk (the device or a parent)."""

    path: str
    kernel: str = ""
    subsystem: str = ""
    driver: str = ""
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass
class Result:
    symlinks: list[str] = field(default_factory=list)
    group: str | None = None
    mode: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    matched: list[str] = field(default_factory=list)


def parse_rules(text: str, name: str = "<rules>") -> list[Rule]:
    rules: list[Rule] = []
    logical = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if line.endswith("\\"):
            logical += line[:-1]
            continue
        logical += line
        stripped = logical.strip()
        logical = ""
        if not stripped or stripped.startswith("#"):
            continue
        rules.append(Rule(f"{name}:{number}", _parse_line(stripped, f"{name}:{number}")))
    return rules


def _parse_line(line: str, where: str) -> tuple[Key, ...]:
    keys: list[Key] = []
    pos = 0
    while pos < len(line):
        m = _TOKEN.match(line, pos)
        if m is None:
            raise RuleError(f"{where}: cannot read a key at {line[pos:]!r}")
        key = Key(m["key"], m["attr"], m["op"], m["value"])
        _check_key(key, where)
        keys.append(key)
        pos = m.end()
        if m["sep"] == "" and pos < len(line):
            raise RuleError(f"{where}: missing comma before {line[pos:]!r}")
    return tuple(keys)


def _check_key(key: Key, where: str) -> None:
    known = DEVICE_KEYS | PARENT_KEYS | ASSIGN_KEYS
    if key.name not in known:
        raise RuleError(f"{where}: unknown key {key.name}")
    if (key.attr is None) == (key.name in WITH_ATTRIBUTE):
        raise RuleError(f"{where}: {key.name} {'needs' if key.attr is None else 'takes no'} {{}}")
    if key.op in MATCH_OPS:
        if key.name not in DEVICE_KEYS | PARENT_KEYS:
            raise RuleError(f"{where}: {key.name} cannot be matched (it is assigned)")
    elif key.name not in ASSIGN_KEYS:
        raise RuleError(f"{where}: {key.name}{key.op} is not an assignment udev accepts")
    elif key.op in {"+=", "-="} and key.name not in {"SYMLINK", "TAG"}:
        raise RuleError(f"{where}: {key.name} takes = or :=, not {key.op}")
    if key.name == "MODE" and not re.fullmatch(r"0?[0-7]{3}", key.value):
        raise RuleError(f"{where}: MODE {key.value!r} is not an octal mode")


def parse_walk(text: str) -> list[Node]:
    """``udevadm info --attribute-walk`` output -> [device, parent, grandparent, ...]."""
    nodes: list[Node] = []
    for raw in text.splitlines():
        header = _WALK_HEADER.match(raw)
        if header:
            nodes.append(Node(header["path"]))
            continue
        line = _WALK_LINE.match(raw)
        if line is None or not nodes:
            continue
        node, key = nodes[-1], line["key"].rstrip("S")
        if key == "KERNEL":
            node.kernel = line["value"]
        elif key == "SUBSYSTEM":
            node.subsystem = line["value"]
        elif key == "DRIVER":
            node.driver = line["value"]
        elif key == "ATTR" and line["attr"]:
            node.attrs[line["attr"]] = line["value"]
    if not nodes:
        raise ValueError("no 'looking at device' block: not udevadm info --attribute-walk output")
    return nodes


def _glob(pattern: str, value: str | None) -> bool:
    if value is None:
        return False
    return any(fnmatch.fnmatchcase(value, alt) for alt in pattern.split("|"))


def _node_value(node: Node, key: Key) -> str | None:
    name = key.name.rstrip("S") if key.name in PARENT_KEYS else key.name
    if name == "KERNEL":
        return node.kernel
    if name == "SUBSYSTEM":
        return node.subsystem
    if name == "DRIVER":
        return node.driver
    return node.attrs.get(key.attr or "")


def _key_matches(key: Key, value: str | None) -> bool:
    hit = _glob(key.value, value)
    return hit if key.op == "==" else not hit


def evaluate(rules: list[Rule], walk: list[Node], env: dict[str, str] | None = None) -> Result:
    """What udev would give the first device of ``walk`` (action "add")."""
    result = Result(env=dict(env or {}))
    final: set[str] = set()
    device = walk[0]
    for rule in rules:
        matches = [k for k in rule.keys if k.op in MATCH_OPS]
        own = [k for k in matches if k.name in DEVICE_KEYS]
        parents = [k for k in matches if k.name in PARENT_KEYS]
        if not all(_own_matches(k, device, result.env) for k in own):
            continue
        if parents and not any(_all_match(parents, node) for node in walk):
            continue
        result.matched.append(rule.source)
        for k in rule.keys:
            if k.op in MATCH_OPS:
                continue
            target = f"ENV{{{k.attr}}}" if k.name == "ENV" else k.name
            if target in final:
                continue
            if k.op == ":=":
                final.add(target)
            if k.name == "SYMLINK":
                links = k.value.split()
                if k.op == "-=":
                    result.symlinks = [s for s in result.symlinks if s not in links]
                elif k.op == "+=":
                    result.symlinks += [s for s in links if s not in result.symlinks]
                else:
                    result.symlinks = links
            elif k.name == "GROUP":
                result.group = k.value
            elif k.name == "MODE":
                result.mode = k.value
            elif k.name == "ENV":
                result.env[k.attr or ""] = k.value
    return result


def _all_match(keys: list[Key], node: Node) -> bool:
    return all(_key_matches(k, _node_value(node, k)) for k in keys)


def _own_matches(key: Key, device: Node, env: dict[str, str]) -> bool:
    if key.name == "ACTION":
        return _key_matches(key, "add")
    if key.name == "ENV":
        return _key_matches(key, env.get(key.attr or ""))
    return _key_matches(key, _node_value(device, key))


def load(path: Path) -> list[Rule]:
    return parse_rules(path.read_text(encoding="utf-8"), path.name)
