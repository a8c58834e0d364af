"""What the dataflow knows about one value: role labels, their reasons, and where a target met context.

A :class:`Fact` is a set of labels (see :mod:`auditor.static.flow` for their meaning), one
reason per label for the evidence, and — when the value combines the token being scored with
context tokens or a hash — a :class:`Join` saying where and how. Facts are immutable and
combined with :func:`union`; :func:`demote` is what a computation *from* token ids (a loss, a
probability) keeps of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import libcst as cst

#: Labels that say a value holds token ids (as opposed to a score computed from them).
TOKEN_LABELS = ("tgt", "tok", "hash", "joined")
#: How many steps of an alias chain a reason keeps (``a = b ← b = c ← …``).
_MAX_TRAIL = 4


@dataclass(frozen=True)
class Join:
    """Where a value holding the target was combined with context tokens or a hash.

    ``how`` is ``op`` (an arithmetic or bitwise combination), ``tuple`` (a tuple of both),
    ``ngram`` (a hash of ``S[B - k]`` combined with ``S[B]``, the token after the context) or
    ``call`` (a function of the submission combines its arguments so); ``hashed`` is true
    when a hash (XOR, a product with a prime, ``hash()``) is on either side.
    """

    node: cst.CSTNode = field(repr=False)
    stmt: object = field(repr=False)  # the index's Stmt (kept untyped: index imports nothing from here)
    how: str = "op"
    hashed: bool = False
    target: object = field(default="", repr=False)  # why the target side holds the target (a str or a Lazy)

    def bucketed(self) -> Join:
        """The join reduced to a table slot (``% size``, ``& mask``): a hashed key."""
        return self if self.hashed else replace(self, hashed=True)


@dataclass(frozen=True)
class Fact:
    """Labels of a value and, for each label, one reason."""

    labels: frozenset[str] = frozenset()
    why: tuple[tuple[str, object], ...] = ()  # (label, reason): a str or a Lazy
    #: Where the target was combined with context (the first such place).
    join: Join | None = None
    #: Per element, for tuples (unpacking ``a, b = f(...)``).
    items: tuple[Fact, ...] | None = None

    def has(self, *labels: str) -> bool:
        return any(label in self.labels for label in labels)

    def reason(self, label: str) -> str:
        for name, text in self.why:
            if name == label:
                return str(text)
        return ""

    def prefixed(self, prefix: str) -> list[str]:
        return [label for label in self.labels if label.startswith(prefix)]

    @property
    def tokenish(self) -> bool:
        return self.has("tok", "tgt", "val", "hash") or any(label.startswith(("ctx:", "cur:", "param:")) for label in self.labels)


EMPTY = Fact()


def union(*facts: Fact) -> Fact:
    facts = tuple(f for f in facts if f is not EMPTY and (f.labels or f.items))
    if not facts:
        return EMPTY
    if len(facts) == 1:
        return facts[0]
    labels: set[str] = set()
    why: dict[str, object] = {}
    join = None
    for f in facts:
        labels |= f.labels
        for name, text in f.why:
            why.setdefault(name, text)
        if join is None:
            join = f.join
    return Fact(frozenset(labels), tuple(why.items()), join)


def demote(fact: Fact) -> Fact:
    """A value computed *from* token ids (a loss, a probability): it no longer holds them.

    ``tgt`` becomes ``tgtdep`` (depends on the target), ``tok`` becomes ``tokdep``; hashes,
    joins and stream positions are dropped; ``val`` and ``grad`` stay.
    """
    if not fact.labels:
        return fact
    labels = set()
    why = dict(fact.why)
    for label in fact.labels:
        if label == "tgt":
            labels.add("tgtdep")
            why.setdefault("tgtdep", why.get("tgt", ""))
        elif label == "tok":
            labels.add("tokdep")
        elif label in TOKEN_LABELS or label.startswith(("ctx:", "cur:", "tgt:")):
            continue
        else:
            labels.add(label)
    return Fact(frozenset(labels), tuple((k, v) for k, v in why.items() if k in labels))


def with_label(fact: Fact, label: str, reason: object) -> Fact:
    if label in fact.labels:
        return fact
    return Fact(fact.labels | {label}, fact.why + ((label, reason),), fact.join, fact.items)


def only(fact: Fact, labels: frozenset[str] | set[str]) -> Fact:
    """The fact restricted to some labels (and their reasons)."""
    kept = fact.labels & labels
    if kept == fact.labels:
        return fact
    return Fact(frozenset(kept), tuple((k, v) for k, v in fact.why if k in kept), fact.join if "joined" in kept else None)


class Lazy:
    """A reason rendered only when a finding shows it (rendering code costs a codegen)."""

    __slots__ = ("_make", "_text", "name", "depth")

    def __init__(self, make, name: str = "", depth: int = 0) -> None:
        self._make = make
        self._text: str | None = None
        self.name = name
        self.depth = depth

    def __str__(self) -> str:
        if self._text is None:
            self._text = self._make()
        return self._text

    def __bool__(self) -> bool:
        return True


def renamed(fact: Fact, name: str, code) -> Fact:
    """The fact of ``name = <value>``: the target's reason gains a step of the alias chain.

    ``code`` renders the assigned value (called only if the reason is ever shown).
    """
    if not fact.labels:
        return fact
    why = []
    for label, text in fact.why:
        if label in ("tgt", "val", "train") and getattr(text, "depth", 0) < _MAX_TRAIL and getattr(text, "name", None) != name:
            text = Lazy(
                (lambda prev=text: f"{name} = {code()} ← {prev}" if str(prev) else f"{name} = {code()}"),
                name,
                getattr(text, "depth", 0) + 1,
            )
        why.append((label, text))
    return Fact(fact.labels, tuple(why), fact.join, fact.items)
