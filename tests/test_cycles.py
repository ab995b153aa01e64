"""The cycle and topic-collision analyses, on hand-made topologies and against a brute-force simulation."""

import itertools

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from mmplan.graph.cycles import Cycle, automaton_supports, find_collisions, find_cycles
from mmplan.graph.policy import Hop, ReplicationPolicy


def flows(*specs, separator=".", heartbeats="heartbeats"):
    """Hops from ``(source, target, policy, include, exclude)`` tuples (filters default to ``.*`` / none)."""
    hops = []
    for index, (source, target, kind, *filters) in enumerate(specs):
        include, exclude = (list(filters) + [[".*"], []][len(filters):])[:2]
        policy = ReplicationPolicy(kind, source, separator, heartbeats)
        hops.append(Hop(source, target, policy, tuple(include), tuple(exclude), index))
    return hops


def travels(hops, cycle: Cycle) -> bool:
    """Whether the example topic really makes the cycle's trip, hop by hop."""
    by_index = {h.flow_index: h for h in hops}
    name = cycle.topic
    for position, index in enumerate(cycle.flow_indices):
        hop = by_index[index]
        if (hop.source, hop.target) != cycle.clusters[position:position + 2] or not hop.replicates(name):
            return False
        name = hop.policy.remote_topic(name)
    return cycle.clusters[-1] in cycle.clusters[:-1]


def test_active_passive_is_sound():
    assert find_cycles(flows(("us-east", "us-west", "default"))) == []


def test_active_active_default_is_sound():
    assert find_cycles(flows(("us-east", "us-west", "default"), ("us-west", "us-east", "default"))) == []


def test_active_active_identity_is_a_cycle():
    hops = flows(("us-east", "us-west", "identity"), ("us-west", "us-east", "identity"))
    [cycle] = find_cycles(hops)
    assert cycle.clusters == ("us-east", "us-west", "us-east")
    assert cycle.flow_indices == (0, 1)
    assert cycle.describe() == f"us-east -> us-west -> us-east (topic {cycle.topic})"
    assert travels(hops, cycle)


def test_identity_both_ways_with_disjoint_filters_is_sound():
    hops = flows(("us-east", "us-west", "identity", ["east-.*"]),
                 ("us-west", "us-east", "identity", ["west-.*"]))
    assert find_cycles(hops) == []


def test_identity_both_ways_with_overlapping_filters_is_a_cycle():
    hops = flows(("us-east", "us-west", "identity", ["east-.*"]),
                 ("us-west", "us-east", "identity", ["(east|west)-.*"], ["east-tmp.*"]))
    [cycle] = find_cycles(hops)
    assert cycle.topic.startswith("east-") and not cycle.topic.startswith("east-tmp")
    assert travels(hops, cycle)


def test_excludes_can_make_identity_both_ways_sound():
    hops = flows(("A", "B", "identity", [".*"], ["b-.*"]), ("B", "A", "identity", ["[ab]-.*"], ["a-.*"]))
    assert find_cycles(hops) == []


def test_only_the_shortest_example_is_reported():
    hops = flows(("A", "B", "identity", ["orders|x.*y"]), ("B", "A", "identity"))
    [cycle] = find_cycles(hops)
    assert cycle.topic == "xy"


def test_three_region_ring_with_default_policy_is_sound():
    assert find_cycles(flows(("A", "B", "default"), ("B", "C", "default"), ("C", "A", "default"))) == []


def test_three_region_ring_with_identity_is_a_cycle():
    hops = flows(("A", "B", "identity"), ("B", "C", "identity"), ("C", "A", "identity"))
    [cycle] = find_cycles(hops)
    assert cycle.clusters == ("A", "B", "C", "A")
    assert travels(hops, cycle)


def test_one_default_hop_in_an_identity_ring_is_not_enough():
    # the default hop names x as B.x, the identity hops keep that name and guard only heartbeat lookalikes
    hops = flows(("A", "B", "identity"), ("B", "C", "default"), ("C", "A", "identity"))
    [cycle] = find_cycles(hops)
    assert cycle.flow_indices == (0, 1, 2)
    assert travels(hops, cycle)


def test_default_then_identity_back_is_a_cycle():
    # B's own topic x goes to A unchanged and comes back to B as A.x
    hops = flows(("A", "B", "default"), ("B", "A", "identity", ["[^.]*"]))
    [cycle] = find_cycles(hops)
    assert (cycle.clusters, cycle.topic) == (("B", "A", "B"), "a")
    assert travels(hops, cycle)


def test_mixed_policies_with_disjoint_filters_are_sound():
    assert find_cycles(flows(("A", "B", "default", ["a-.*"]), ("B", "A", "identity", ["b-.*"]))) == []


def test_hub_and_spoke_is_sound():
    spokes = [(edge, "central", "default") for edge in ("edge-1", "edge-2", "edge-3")]
    assert find_cycles(flows(*spokes)) == []
    assert find_cycles(flows(*[(e, c, "identity") for e, c, _ in spokes])) == []


def test_hub_and_spoke_with_identity_back_to_edges_is_a_cycle():
    hops = flows(("edge-1", "central", "identity", ["edge1-.*"]), ("central", "edge-1", "identity"))
    [cycle] = find_cycles(hops)
    assert cycle.topic.startswith("edge1-")
    assert travels(hops, cycle)


def test_heartbeats_alone_never_make_a_cycle():
    # the filters let nothing through, so only heartbeats move; identity still prefixes them
    for kind in ("default", "identity"):
        hops = flows(("A", "B", kind, []), ("B", "A", kind, []), ("B", "C", kind, []), ("C", "A", kind, []))
        assert find_cycles(hops) == []


def test_custom_heartbeats_name_is_still_guarded():
    hops = flows(("A", "B", "identity", []), ("B", "A", "identity", []), heartbeats="mm2-heartbeats")
    assert find_cycles(hops) == []


def test_cycles_in_a_mesh_are_reported_once_per_new_flow():
    hops = flows(*[(a, b, "identity") for a, b in itertools.permutations("ABC", 2)])
    cycles = find_cycles(hops)
    assert [c.clusters for c in cycles] == [("A", "B", "A"), ("A", "C", "A"), ("B", "C", "B")]
    assert all(travels(hops, c) for c in cycles)


def test_self_flows_are_left_to_their_own_check():
    assert find_cycles(flows(("A", "A", "identity"))) == []


def test_fallback_for_patterns_without_automaton_reports_a_cycle():
    assert not automaton_supports("(a)\\1")
    assert not automaton_supports("^a$")
    assert automaton_supports("(?:a|b)+[^.]{1,3}")
    hops = flows(("A", "B", "identity", ["(?=x)y"]), ("B", "A", "identity"))
    assert len(find_cycles(hops)) == 1


def test_two_identity_flows_into_one_cluster_collide():
    [collision] = find_collisions(flows(("A", "C", "identity"), ("B", "C", "identity")))
    assert (collision.target, collision.flow_indices) == ("C", (0, 1))
    assert collision.topic in collision.describe()


def test_identity_flows_with_disjoint_filters_do_not_collide():
    assert find_collisions(flows(("A", "C", "identity", ["a-.*"]), ("B", "C", "identity", ["b-.*"]))) == []


def test_default_flows_into_one_cluster_do_not_collide():
    assert find_collisions(flows(("A", "C", "default"), ("B", "C", "default"))) == []


def test_identity_flow_can_collide_with_a_default_flow():
    [collision] = find_collisions(flows(("A", "C", "default"), ("B", "C", "identity")))
    assert collision.topic.startswith("A.")


def test_alias_containing_the_separator_collides():
    # A.x from A and x.y... : "A" + "." + "B.x" equals "A.B" + "." + "x"
    hops = flows(("A", "C", "default"), ("A.B", "C", "default"))
    [collision] = find_collisions(hops)
    assert collision.topic.startswith("A.B.")


# --- property test: exact analysis against brute force -------------------------------------------

ALPHABET = "ab.-"
MAX_LENGTH = 4
NAMES = ["".join(p) for n in range(1, MAX_LENGTH + 1) for p in itertools.product(ALPHABET, repeat=n)]

atoms = st.sampled_from(["a", "b", "\\.", "-", ".", "[ab]", "[^a]", "a\\.", "(?:a|b-)"])
regexes = st.lists(st.tuples(atoms, st.sampled_from(["", "*", "?", "+"])), min_size=1, max_size=3).map(
    lambda parts: "".join(a + q for a, q in parts))


@st.composite
def topologies(draw):
    aliases = draw(st.lists(st.sampled_from(["a", "b", "ab", "b-a", "bb"]), min_size=2, max_size=4,
                            unique=True))
    separator = draw(st.sampled_from([".", "-", ".."]))
    heartbeats = draw(st.sampled_from(["b", "ab", "heartbeats"]))
    hops = []
    for index in range(draw(st.integers(1, 5))):
        source = draw(st.sampled_from(aliases))
        target = draw(st.sampled_from([a for a in aliases if a != source]))
        policy = ReplicationPolicy(draw(st.sampled_from(["default", "identity"])), source, separator, heartbeats)
        include = draw(st.one_of(st.just([".*"]), st.lists(regexes, max_size=2)))
        exclude = draw(st.lists(regexes, max_size=1))
        hops.append(Hop(source, target, policy, tuple(include), tuple(exclude), index))
    return hops


def brute_force_cycle(hops) -> bool:
    """Whether some enumerated name comes back to a cluster it passed, following ``Hop.replicates``."""
    def returns(cluster, name, visited):
        for hop in hops:
            if hop.source == cluster and hop.replicates(name):
                if hop.target in visited or returns(hop.target, hop.policy.remote_topic(name),
                                                    visited | {hop.target}):
                    return True
        return False

    return any(returns(c, name, {c}) for c in {h.source for h in hops} for name in NAMES)


def within_enumeration(topic: str) -> bool:
    return len(topic) <= MAX_LENGTH and set(topic) <= set(ALPHABET)


@settings(max_examples=100, deadline=None)
@given(topologies())
def test_cycle_verdict_agrees_with_brute_force(hops):
    cycles = find_cycles(hops)
    for cycle in cycles:
        assert travels(hops, cycle), cycle
    if brute_force_cycle(hops):
        assert cycles
    elif cycles:
        # a cycle whose shortest example is outside the enumeration: the simulation above confirmed it
        assert not any(within_enumeration(c.topic) for c in cycles)
        event("cycle beyond the enumeration")
    event("cycle" if cycles else "sound")


@settings(max_examples=40, deadline=None)
@given(topologies())
def test_collision_examples_are_real(hops):
    for collision in find_collisions(hops):
        for index in collision.flow_indices:
            hop = hops[index]
            prefix = hop.source + hop.policy.separator
            sources = [collision.topic] + [collision.topic[len(prefix):]] * collision.topic.startswith(prefix)
            assert any(hop.replicates(t) and hop.policy.remote_topic(t) == collision.topic for t in sources)


@pytest.mark.parametrize("kind", ["default", "identity"])
def test_collisions_agree_with_brute_force_on_a_small_case(kind):
    # heartbeats named "bb" so that the enumeration reaches them: a.bb from a is named a.a.bb by both
    hops = flows(("a", "c", kind, ["a.*"]), ("a.a", "c", "default", ["[ab]+"]), heartbeats="bb")
    images = [{h.policy.remote_topic(n) for n in NAMES if h.replicates(n)} for h in hops]
    assert bool(images[0] & images[1]) == bool(find_collisions(hops))
