"""The ``cycle`` and ``topic-collision`` analyses, exact for regular filters.

Every set of topic names involved is a regular language, held as a deterministic automaton (``_Dfa``;
``interegular`` parses the filter patterns): a hop's filter (its include patterns minus its exclude patterns),
the heartbeats topics of its policy, its internal topics and the names its ``isCycle`` guard stops. The
guard's language follows from Java's split: ``topicSource(t)`` is ``s`` exactly when ``t = s + sep + rest``,
``s + sep`` contains ``sep`` only at its end (a *piece*) and ``rest`` is not made of separators only; so the
names whose chain of sources contains ``T`` are ``piece* (T + sep) rest``. ``Hop.replicates`` is then one
automaton per hop, and naming is a map on languages (the default policy prepends ``<source><sep>``; identity
keeps names, except those ending with the heartbeats name, which it names like the default policy).

``find_cycles`` follows the language of all legal topic names from every cluster along every simple path of
hops, dropping a path as soon as no name survives it, and reports a cycle when some name arrives back at the
start.  A record that returns to any cluster it passed returns, first, along such a simple cycle (taken from
the cluster where it closes), so this decides the question exactly.  The example topic is the shortest
origin name that makes the trip, computed backwards from the end of the path.

Paths longer than two hops are pruned by a fixed point: for each start cluster, the names at every cluster
that some walk of hops brings back to it.  Cycles are searched shortest first and the search stops once
every flow is in a reported cycle, so an identity full mesh costs its two-cluster cycles only.

Limits, all on the side of reporting too much: a filter pattern the automaton library cannot represent
(anchors, lookarounds, backreferences, possessive or atomic groups, see ``automaton_supports``) counts as
matching every name when it is an include pattern and no name when it is an exclude pattern, and then the
example topic of a cycle may not really travel it; the 249-character limit on topic names is not applied.
Hops whose source is their target are left to the ``self-flow`` check.  The search raises
``AnalysisTooLarge`` after ``MAX_STEPS`` hop steps, which takes minutes; real topologies need a few dozen.
"""

from __future__ import annotations

import re
import string
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from interegular import parse_pattern
from interegular.fsm import FSM, Alphabet, anything_else

from mmplan.graph.policy import Hop, ReplicationPolicy, java_split

LEGAL_CHARS = string.ascii_lowercase + string.digits + string.ascii_uppercase + "-_."
"""Characters of a Kafka topic name, in the order examples prefer them."""
MAX_STEPS = 10_000
_FIXED_WORDS = ("mm2", "internal", "checkpoints", "__")
_SUPPORTED_OPS = {"LITERAL", "NOT_LITERAL", "ANY", "IN", "BRANCH", "SUBPATTERN", "MAX_REPEAT", "MIN_REPEAT"}


class AnalysisTooLarge(ValueError):
    """The topology has too many paths for the cycle search."""


@dataclass(frozen=True)
class Cycle:
    """Records of ``topic`` on ``clusters[0]`` come back to it along ``clusters``."""

    clusters: tuple[str, ...]
    topic: str
    flow_indices: tuple[int, ...]

    def describe(self) -> str:
        return f"{' -> '.join(self.clusters)} (topic {self.topic})"


@dataclass(frozen=True)
class Collision:
    """Two flows would both write the topic ``topic`` into ``target``."""

    target: str
    topic: str
    flow_indices: tuple[int, int]

    def describe(self) -> str:
        return f"two flows would write topic {self.topic} into {self.target}"


def find_cycles(hops: Sequence[Hop]) -> list[Cycle]:
    """The cycles of the hops, shortest first, one per cyclic sequence of clusters.

    Cycles are searched by length; a cycle is reported only if it uses a flow that no shorter or
    earlier-numbered reported cycle uses, and the search ends once every flow is in a reported cycle.
    """
    hops = sorted((h for h in hops if h.source != h.target), key=lambda h: h.flow_index)
    langs = _Languages(hops)
    outgoing: dict[str, list[Hop]] = {}
    for hop in hops:
        outgoing.setdefault(hop.source, []).append(hop)
    clusters = list(dict.fromkeys(c for h in hops for c in (h.source, h.target)))
    returning: dict[str, dict[str, _Dfa]] = {}
    arrive = cache(lambda hop, moved, wanted: (langs.image(hop, moved) & wanted).minimal())
    seen: set[tuple[str, ...]] = set()
    covered: set[int] = set()
    cycles: list[Cycle] = []
    steps = 0

    def wanted(start: str, cluster: str, length: int) -> _Dfa:
        """Names at ``cluster`` that can come back to ``start``; pruning pays only beyond two hops."""
        if length == 2:
            return langs.all
        if start not in returning:
            returning[start] = langs.returning(start, hops)
        return returning[start][cluster]

    def search(start: str, names: _Dfa, path: list[Hop], length: int, found: list[list[Hop]]) -> None:
        nonlocal steps
        visited = {start} | {h.target for h in path}
        for hop in outgoing.get(path[-1].target if path else start, []):
            closes = hop.target == start
            if closes != (len(path) + 1 == length) or (hop.target in visited and not closes):
                continue
            if closes and (_rotation_key(path + [hop]) in seen
                           or covered.issuperset(h.flow_index for h in path + [hop])):
                continue
            steps += 1
            if steps > MAX_STEPS:
                raise AnalysisTooLarge(f"more than {MAX_STEPS} steps in the cycle search")
            moved = langs.moved(hop, names)
            if moved.empty():
                continue
            if closes:
                seen.add(_rotation_key(path + [hop]))
                found.append(path + [hop])
            else:
                arriving = arrive(hop, moved, wanted(start, hop.target, length))
                if not arriving.empty():
                    search(start, arriving, path + [hop], length, found)

    for length in range(2, len(clusters) + 1):
        if covered.issuperset(h.flow_index for h in hops):
            break
        found: list[list[Hop]] = []
        for start in clusters:
            search(start, (langs.topics & wanted(start, start, length)).minimal(), [], length, found)
        for path in sorted(found, key=lambda p: [h.flow_index for h in p]):
            indices = tuple(h.flow_index for h in path)
            if not covered.issuperset(indices):
                covered.update(indices)
                cycles.append(Cycle((path[0].source, *(h.target for h in path)), langs.origin_example(path),
                                    indices))
    return cycles


def find_collisions(hops: Sequence[Hop]) -> list[Collision]:
    """Pairs of flows from different sources into one target whose remote names can be equal.

    Two flows with the same source and target are left to the ``duplicate-flow`` check.
    """
    hops = sorted((h for h in hops if h.source != h.target), key=lambda h: h.flow_index)
    langs = _Languages(hops)
    image = cache(lambda h: langs.image(h, langs.topics & langs.replicated(h)))
    collisions = []
    for i, a in enumerate(hops):
        for b in hops[i + 1:]:
            if a.target != b.target or a.source == b.source:
                continue
            example = langs.shortest(image(a) & image(b))
            if example is not None:
                collisions.append(Collision(a.target, example, (a.flow_index, b.flow_index)))
    return collisions


def _rotation_key(path: list[Hop]) -> tuple[str, ...]:
    clusters = [h.source for h in path]
    return min(tuple(clusters[i:] + clusters[:i]) for i in range(len(clusters)))


def automaton_supports(pattern: str) -> bool:
    """Whether ``pattern`` uses only features the automata represent exactly."""
    try:
        from re import _parser  # the parser ``re`` itself uses (Python 3.11+)
    except ImportError:  # Python 3.10
        import sre_parse as _parser

    def plain(items) -> bool:
        for op, arg in items:
            if str(op) not in _SUPPORTED_OPS:
                return False
            if str(op) == "BRANCH" and not all(plain(branch) for branch in arg[1]):
                return False
            if str(op) == "SUBPATTERN" and not plain(arg[3]):
                return False
            if str(op) in ("MAX_REPEAT", "MIN_REPEAT") and not plain(arg[2]):
                return False
        return True

    try:
        return plain(_parser.parse(pattern))
    except (re.error, RecursionError):
        return False


@dataclass(frozen=True)
class _Dfa:
    """A complete deterministic automaton over the character classes ``0..k-1`` of one ``_Languages``.

    ``rows[state][class]`` is the next state; state 0 is the start.  ``minimal()`` automata are numbered
    in breadth-first order, so two of them are equal exactly when their languages are.
    """

    rows: tuple[tuple[int, ...], ...]
    finals: frozenset[int]

    @staticmethod
    def build(start, step, final, classes: int) -> _Dfa:
        """The automaton of the states reachable from ``start`` through ``step``, trimmed."""
        index = {start: 0}
        states = [start]
        rows = []
        for state in states:
            row = []
            for cls in range(classes):
                nxt = step(state, cls)
                if nxt not in index:
                    index[nxt] = len(states)
                    states.append(nxt)
                row.append(index[nxt])
            rows.append(tuple(row))
        return _Dfa(tuple(rows), frozenset(i for i, s in enumerate(states) if final(s)))._trimmed()

    def minimal(self) -> _Dfa:
        """Hopcroft's minimisation (every state is reachable: ``build`` made them so)."""
        classes = len(self.rows[0])
        sources = [[[] for _ in self.rows] for _ in range(classes)]
        for state, row in enumerate(self.rows):
            for cls, nxt in enumerate(row):
                sources[cls][nxt].append(state)
        blocks = [b for b in (set(self.finals), set(range(len(self.rows))) - self.finals) if b]
        block_of = {state: i for i, block in enumerate(blocks) for state in block}
        pending = {min(range(len(blocks)), key=lambda i: len(blocks[i]))} if len(blocks) == 2 else set()
        while pending:
            splitter = list(blocks[pending.pop()])
            for cls in range(classes):
                hit: dict[int, set[int]] = {}
                for target in splitter:
                    for state in sources[cls][target]:
                        hit.setdefault(block_of[state], set()).add(state)
                for i, inside in hit.items():
                    if len(inside) == len(blocks[i]):
                        continue
                    blocks[i] -= inside
                    blocks.append(inside)
                    for state in inside:
                        block_of[state] = len(blocks) - 1
                    pending.add(len(blocks) - 1 if i in pending or len(inside) <= len(blocks[i]) else i)
                    if i in pending:
                        pending.add(len(blocks) - 1)
        number = {b: n for n, b in enumerate(dict.fromkeys(block_of[s] for s in range(len(self.rows))))}
        rows: dict[int, tuple[int, ...]] = {}
        for state, row in enumerate(self.rows):
            rows.setdefault(number[block_of[state]], tuple(number[block_of[t]] for t in row))
        quotient = [rows[i] for i in range(len(rows))]
        return _Dfa.build(0, lambda s, c: quotient[s][c], {number[block_of[f]] for f in self.finals}.__contains__,
                          classes)

    def _trimmed(self) -> _Dfa:
        """The same language with every state that cannot reach a final state merged into one."""
        sources: list[set[int]] = [set() for _ in self.rows]
        for state, row in enumerate(self.rows):
            for nxt in row:
                sources[nxt].add(state)
        live, todo = set(self.finals), list(self.finals)
        while todo:
            for prev in sources[todo.pop()] - live:
                live.add(prev)
                todo.append(prev)
        if len(live) == len(self.rows):
            return self
        if 0 not in live:
            return _Dfa(((0,) * len(self.rows[0]),), frozenset())
        number = {state: n for n, state in enumerate(sorted(live))}
        dead = len(number)
        rows = [tuple(number.get(t, dead) for t in self.rows[state]) for state in sorted(live)]
        rows.append((dead,) * len(self.rows[0]))
        return _Dfa(tuple(rows), frozenset(number[f] for f in self.finals))

    def empty(self) -> bool:
        return not self.finals

    def _product(self, other: _Dfa, keep) -> _Dfa:
        return _Dfa.build((0, 0), lambda s, c: (self.rows[s[0]][c], other.rows[s[1]][c]),
                          lambda s: keep(s[0] in self.finals, s[1] in other.finals), len(self.rows[0]))

    def __and__(self, other: _Dfa) -> _Dfa:
        return self._product(other, lambda a, b: a and b)

    def __or__(self, other: _Dfa) -> _Dfa:
        return self._product(other, lambda a, b: a or b)

    def __sub__(self, other: _Dfa) -> _Dfa:
        return self._product(other, lambda a, b: a and not b)

    def __add__(self, other: _Dfa) -> _Dfa:
        """Concatenation."""
        def enter(state: int, tails: frozenset[int]) -> tuple[int, frozenset[int]]:
            return state, tails | {0} if state in self.finals else tails

        return _Dfa.build(enter(0, frozenset()),
                          lambda s, c: enter(self.rows[s[0]][c], frozenset(other.rows[t][c] for t in s[1])),
                          lambda s: not other.finals.isdisjoint(s[1]), len(self.rows[0]))

    def star(self) -> _Dfa:
        def enter(states: frozenset[int]) -> frozenset[int]:
            return states | {0} if not self.finals.isdisjoint(states) else states

        return _Dfa.build(None, lambda s, c: enter(frozenset(self.rows[t][c] for t in (s or (0,)))),
                          lambda s: s is None or not self.finals.isdisjoint(s), len(self.rows[0]))

    def after(self, classes: Sequence[int]) -> _Dfa:
        """The names ``w`` such that the word of ``classes`` followed by ``w`` is accepted."""
        state = 0
        for cls in classes:
            state = self.rows[state][cls]
        return _Dfa.build(state, lambda s, c: self.rows[s][c], self.finals.__contains__, len(self.rows[0]))


class _Languages:
    """Automata over one alphabet fine enough for every pattern and name of ``hops``."""

    def __init__(self, hops: Sequence[Hop]) -> None:
        words = {w for h in hops for w in (h.source, h.target, h.policy.separator, h.policy.heartbeats_topic)}
        mentioned = set("".join(words | set(_FIXED_WORDS) | {"."}))
        groups = [{c} for c in sorted(mentioned)] + [set(LEGAL_CHARS) - mentioned, {anything_else}]
        alphabets = [Alphabet.from_groups(*(g for g in groups if g))]
        parsed = {}
        for pattern in {p for h in hops for p in h.include + h.exclude if automaton_supports(p)}:
            try:
                parsed[pattern] = parse_pattern(pattern)
                alphabets.append(parsed[pattern].get_alphabet(parsed[pattern].added_flags))
            except Exception:  # noqa: BLE001 - anything interegular cannot parse falls back as documented
                parsed.pop(pattern, None)
        self.alphabet = Alphabet.union(*alphabets)[0]
        self.classes = len(self.alphabet.by_transition)
        self.patterns = {p: self._from_fsm(fsm.to_fsm(self.alphabet)) for p, fsm in parsed.items()}
        self.all = _Dfa(((0,) * self.classes,), frozenset({0}))
        self.nothing = _Dfa(((0,) * self.classes,), frozenset())
        self.nonempty = self.all - self.word("")
        legal = [set(self.alphabet.by_transition[c]) <= set(LEGAL_CHARS) for c in range(self.classes)]
        self.topics = _Dfa.build(0, lambda s, c: 1 if s >= 0 and legal[c] else -1, lambda s: s == 1,
                                 self.classes)
        self._replicated: dict[Hop, _Dfa] = {}
        self.moved = cache(self.moved)
        self.image = cache(self.image)
        self.word = cache(self.word)
        self.pieces = cache(self.pieces)
        self.heartbeats = cache(self.heartbeats)
        self.guarded_tail = cache(self.guarded_tail)

    def _from_fsm(self, fsm: FSM) -> _Dfa:
        # interegular renumbers its alphabet in every operation: translate through a symbol of each class
        keys = [fsm.alphabet[next(iter(self.alphabet.by_transition[cls]))] for cls in range(self.classes)]

        def step(state, cls):
            return fsm.map.get(state, {}).get(keys[cls])

        return _Dfa.build(fsm.initial, step, fsm.finals.__contains__, self.classes)

    def classes_of(self, text: str) -> list[int]:
        return [self.alphabet[ch] for ch in text]

    def word(self, text: str) -> _Dfa:
        """Just ``text``."""
        classes = self.classes_of(text)
        return _Dfa.build(0, lambda s, c: s + 1 if 0 <= s < len(classes) and classes[s] == c else -1,
                          lambda s: s == len(classes), self.classes)

    def pieces(self, sep: str) -> _Dfa:
        """Concatenations of pieces: strings ``s + sep`` in which ``sep`` occurs only at the end."""
        ends = self.all + self.word(sep)
        return (ends - (ends + self.nonempty)).star()

    def guarded_tail(self, sep: str, target: str) -> _Dfa:
        """``target + sep + rest`` where ``target + sep`` is a piece and ``rest`` is not separators only."""
        head = self.word(target + sep) - (self.all + self.word(sep) + self.nonempty)
        return head + (self.all - self.word(sep).star())

    def heartbeats(self, sep: str, name: str) -> _Dfa:
        """Names whose original topic is ``name`` (the same for both policies)."""
        if java_split(name, sep)[1:]:
            return self.nothing
        if not java_split(name, sep):
            return self.word(name)
        return self.pieces(sep) + self.word(name)

    def internal(self, policy: ReplicationPolicy) -> _Dfa:
        mm2 = (self.word("mm2") + self.all) & (self.all + self.word(policy.internal_suffix))
        return (mm2 | (self.all + self.word(policy.checkpoints_suffix))
                | (self.word("__") + self.all) | (self.word(".") + self.all))

    def cycles(self, policy: ReplicationPolicy, target: str) -> _Dfa:
        """Names the policy's ``isCycle`` stops on the way to ``target``."""
        tail = self.guarded_tail(policy.separator, target)
        if policy.kind == "identity":
            tail = tail & self._ends_heartbeats(policy)
        return self.pieces(policy.separator) + tail

    def _ends_heartbeats(self, policy: ReplicationPolicy) -> _Dfa:
        return self.all + self.word(policy.heartbeats_topic)

    def _filter(self, patterns: tuple[str, ...], fallback: _Dfa) -> _Dfa:
        result = self.nothing
        for pattern in patterns:
            result = result | self.patterns.get(pattern, fallback)
        return result

    def replicated(self, hop: Hop) -> _Dfa:
        """Names ``hop.replicates`` accepts."""
        if hop not in self._replicated:
            policy = hop.policy
            accepted = self._filter(hop.include, self.all) - self._filter(hop.exclude, self.nothing)
            accepted = accepted | self.heartbeats(policy.separator, policy.heartbeats_topic)
            stopped = self.internal(policy) | self.cycles(policy, hop.target)
            self._replicated[hop] = (accepted - stopped).minimal()
        return self._replicated[hop]

    def moved(self, hop: Hop, names: _Dfa) -> _Dfa:
        """The names of ``names`` that ``hop`` replicates."""
        return (names & self.replicated(hop)).minimal()

    def returning(self, start: str, hops: Sequence[Hop]) -> dict[str, _Dfa]:
        """For each cluster, the names there that some walk of ``hops`` brings back to ``start``.

        A least fixed point, reached in finitely many steps because every language met is a Boolean
        combination of derivatives of finitely many regular languages.
        """
        back = {c: self.nothing for h in hops for c in (h.source, h.target)}
        into: dict[str, list[Hop]] = {}
        for hop in hops:
            into.setdefault(hop.target, []).append(hop)
        pending = deque(hops)
        while pending:
            hop = pending.popleft()
            wanted = self.all if hop.target == start else back[hop.target]
            new = self.preimage(hop, wanted)
            if not (new - back[hop.source]).empty():
                back[hop.source] = (back[hop.source] | new).minimal()
                pending.extend(h for h in into.get(hop.source, []) if h not in pending)
        return back

    def image(self, hop: Hop, names: _Dfa) -> _Dfa:
        """Names on the target of the source names ``names``."""
        prefix = self.word(hop.source + hop.policy.separator)
        if hop.policy.kind == "default":
            return (prefix + names).minimal()
        hb = self._ends_heartbeats(hop.policy)
        return ((names - hb) | (prefix + (names & hb))).minimal()

    def preimage(self, hop: Hop, names: _Dfa) -> _Dfa:
        """Source names that ``hop`` replicates and names into ``names``."""
        prefixed = names.after(self.classes_of(hop.source + hop.policy.separator))
        if hop.policy.kind == "identity":
            hb = self._ends_heartbeats(hop.policy)
            prefixed = (names - hb) | (prefixed & hb)
        return prefixed & self.replicated(hop)

    def origin_example(self, path: list[Hop]) -> str:
        """The shortest legal name that travels the whole of ``path``."""
        names = self.all
        for hop in reversed(path):
            names = self.preimage(hop, names)
        example = self.shortest(names & self.topics)
        assert example is not None, "the forward search found names the backward one does not"
        return example

    def shortest(self, dfa: _Dfa) -> str | None:
        """The shortest string ``dfa`` accepts, characters preferred in ``LEGAL_CHARS`` order; None if empty."""
        rank = {c: i for i, c in enumerate(LEGAL_CHARS)}
        edges = sorted(min((rank.get(s, len(rank)), s, cls) for s in symbols if s is not anything_else)
                       for cls, symbols in self.alphabet.by_transition.items() if symbols != [anything_else])
        parents: dict[int, tuple[int, str] | None] = {0: None}
        queue = deque([0])
        while queue:
            state = queue.popleft()
            if state in dfa.finals:
                text = []
                while (parent := parents[state]) is not None:
                    state, char = parent
                    text.append(char)
                return "".join(reversed(text))
            for _, char, cls in edges:
                nxt = dfa.rows[state][cls]
                if nxt not in parents:
                    parents[nxt] = (state, char)
                    queue.append(nxt)
        return None
