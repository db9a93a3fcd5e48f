"""The etcd flavor's pure parts: properties, the join decision, the Init script, the
verdicts on removal, order and health (no etcd here; the other modules use a real one)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from infrakit import errors
from infrakit.plugins.flavor.etcd import joining, members, plugin, script, settings, verdicts
from infrakit.plugins.flavor.etcd.view import View
from infrakit.spi import flavor, instance

PROPS = settings.parse({"ClientPort": 2379, "PeerPort": 2380})
A, B, C, D = (settings.address(f"127.0.0.{n}", PROPS) for n in (21, 22, 23, 24))


def member(n: int, address: settings.Address, *, started: bool = True,
           learner: bool = False) -> members.Member:
    return members.Member(id=n, name=address.name if started else "",
                          peer_urls=(address.peer_url,),
                          client_urls=(address.client_url,) if started else (),
                          learner=learner)


def said(n: int, *, leader: int = 1, index: int = 100, applied: int = 100,
         problems: tuple[str, ...] = ()) -> members.Status:
    return members.Status(member_id=n, leader=leader, raft_index=index, applied_index=applied,
                          problems=problems)


def view(listed: list[members.Member], *answering: members.Status) -> View:
    return View(listed=listed, statuses={s.member_id: s for s in answering})


HEALTHY3 = view([member(1, A), member(2, B), member(3, C)], said(1), said(2), said(3))


# Properties ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ({"ClientPort": "x"}, "Properties.ClientPort: expected an integer"),
    ({"PeerPort": 70000}, "Properties.PeerPort"),
    ({"Flag": ["--x"]}, "Properties.Flag: unknown field; did you mean Flags?"),
    ({"ClientPort": 2380}, "ClientPort and PeerPort must differ"),
    ({"Timeout": "soon"}, "Properties.Timeout: expected a duration"),
    ([1, 2], "Properties"),
])
async def test_bad_properties_are_refused_naming_the_field(raw: Any, expected: str) -> None:
    with pytest.raises(errors.InvalidError) as caught:
        await plugin.Plugin().validate(raw, flavor.AllocationMethod(
            logical_ids=["127.0.0.21"]))
    assert expected in caught.value.message


@pytest.mark.parametrize(("allocation", "expected"), [
    (flavor.AllocationMethod(size=3), "Allocation.LogicalIDs: required; etcd members are pets"),
    (flavor.AllocationMethod(logical_ids=["127.0.0.21", "a b"]),
     "Allocation.LogicalIDs[1]: expected a host name or an IP address, got 'a b'"),
    (flavor.AllocationMethod(logical_ids=["x=y"]), "Allocation.LogicalIDs[0]"),
])
async def test_an_allocation_without_usable_logical_ids_is_refused(
        allocation: flavor.AllocationMethod, expected: str) -> None:
    with pytest.raises(errors.InvalidError) as caught:
        await plugin.Plugin().validate({}, allocation)
    assert expected in caught.value.message


async def test_prepare_refuses_an_instance_without_logical_id() -> None:
    with pytest.raises(errors.InvalidError, match=r"Spec\.LogicalID: required"):
        await plugin.Plugin().prepare({}, instance.Spec(), flavor.AllocationMethod(
            logical_ids=["127.0.0.21"]), flavor.Index(group="g"))


def test_a_members_identity_comes_from_its_logical_id() -> None:
    expected = settings.Address(name="127.0.0.21", client_url="http://127.0.0.21:2379",
                                peer_url="http://127.0.0.21:2380")
    assert settings.address("127.0.0.21", PROPS) == expected
    assert settings.address("::1", PROPS).client_url == "http://[::1]:2379"


# The join decision --------------------------------------------------------------------------

def test_with_no_member_answering_the_allocation_bootstraps() -> None:
    join = joining.plan(None, me=B, allocation=[A, B, C])
    assert (join.state, join.cluster, join.add, join.remove) == ("new", (A, B, C), False, ())


def test_a_member_of_a_forming_cluster_bootstraps_with_it() -> None:
    forming = view([member(1, A, started=False), member(2, B, started=False),
                    member(3, C, started=False)])
    assert joining.plan(forming, me=B, allocation=[A, B, C]).state == "new"


def test_a_started_member_of_a_cluster_without_leader_restarts_from_its_data() -> None:
    lost = view([member(1, A), member(2, B), member(3, C)], said(1, leader=0))
    assert joining.plan(lost, me=B, allocation=[A, B, C]).state == "restart"


def test_a_stranger_waits_for_a_leader() -> None:
    lost = view([member(1, A), member(2, B)], said(1, leader=0))
    with pytest.raises(errors.TemporaryError, match=r"127\.0\.0\.23 cannot join now: "
                                                    "the cluster has no leader"):
        joining.plan(lost, me=C, allocation=[A, B, C])


@pytest.mark.parametrize(("listed", "removed", "add"), [
    ([member(1, A), member(3, C)], [], True),                     # new: add it
    ([member(1, A), member(2, B), member(3, C)], [2], True),      # dead predecessor
    ([member(1, A), member(2, B, started=False), member(3, C)], [], False),  # added, not started
    ([member(1, A), members.Member(id=2, name=B.name, peer_urls=("http://127.0.0.22:9",),
                                   client_urls=(B.client_url,)), member(3, C)], [2], True),
])
def test_with_a_leader_a_member_joins_existing_after_its_old_self_is_removed(
        listed: list[members.Member], removed: list[int], add: bool) -> None:
    join = joining.plan(view(listed, said(1)), me=B, allocation=[A, B, C])
    assert join.state == "existing"
    assert [m.id for m in join.remove] == removed
    assert join.add is add


def test_the_initial_cluster_of_a_joining_member_names_every_member() -> None:
    listed = [member(1, A), member(0x2a, B, started=False),
              members.Member(id=0xff, name="", peer_urls=("http://10.0.0.9:2380",),
                             client_urls=())]
    assert joining.membership(listed, me=B, known=[A, B]) == [
        ("127.0.0.21", A.peer_url), ("127.0.0.22", B.peer_url), ("mff", "http://10.0.0.9:2380")]


# The Init script ----------------------------------------------------------------------------

def run_script(text: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", "-c", text], cwd=cwd, capture_output=True, text=True,
                          timeout=10, check=False)


@pytest.mark.parametrize(("state", "wiped", "flag"), [
    ("new", False, "new"), ("existing", True, "existing"), ("restart", False, "existing")])
def test_the_script_starts_etcd_for_its_state(state: joining.State, wiped: bool, flag: str,
                                              tmp_path: Path) -> None:
    props = settings.parse({"Binary": "echo", "DataDir": "my data", "Flags": ["--x", "a b"]})
    me = settings.address("127.0.0.22", props)
    old = tmp_path / "my data" / "127.0.0.22" / "member" / "wal"
    old.mkdir(parents=True)
    text = script.render(me, state=state, cluster=[("127.0.0.21", A.peer_url),
                                                   ("127.0.0.22", me.peer_url)],
                         token="t", props=props)
    done = run_script(text, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "--name", "127.0.0.22", "--data-dir", "my", "data/127.0.0.22",
        "--listen-client-urls", me.client_url, "--advertise-client-urls", me.client_url,
        "--listen-peer-urls", me.peer_url, "--initial-advertise-peer-urls", me.peer_url,
        "--initial-cluster", f"127.0.0.21={A.peer_url},127.0.0.22={me.peer_url}",
        "--initial-cluster-token", "t", "--initial-cluster-state", flag, "--pre-vote=true",
        "--x", "a", "b"]
    assert old.exists() is not wiped


def test_a_restart_without_data_refuses_and_says_why(tmp_path: Path) -> None:
    props = settings.parse({"Binary": "echo"})
    text = script.render(B, state="restart", cluster=[], token="t", props=props)
    done = run_script(text, tmp_path)
    assert done.returncode == 1
    assert "etcd member 127.0.0.22 has no data in etcd-data/127.0.0.22" in done.stderr


# Verdicts -----------------------------------------------------------------------------------

def test_any_one_of_three_healthy_members_may_go() -> None:
    assert all(verdicts.removal(HEALTHY3, x).allowed for x in (A, B, C))


def test_a_removal_that_would_lose_quorum_is_refused_with_the_numbers() -> None:
    one_dead = view([member(1, A), member(2, B), member(3, C)], said(1), said(3))
    refused = verdicts.removal(one_dead, A)
    assert refused == flavor.Removal(allowed=False, reason=(
        "removing 127.0.0.21 would leave 1 of 2 voting members healthy; quorum needs 2"))
    assert verdicts.removal(one_dead, B).allowed  # the dead one may go


@pytest.mark.parametrize(("cluster", "reason"), [
    (view([member(1, A), member(2, B), member(3, C, started=False)], said(1), said(2)),
     "removing 127.0.0.21 must wait: 127.0.0.23 has not started yet"),
    (view([member(1, A), member(2, B), member(3, C)], said(1, index=1000, applied=1000),
          said(2, applied=1000), said(3, applied=40)),
     "removing 127.0.0.21 must wait: 127.0.0.23 has not caught up yet (applied 40 of 1000)"),
    (view([member(1, A), member(2, B), member(3, C)], said(1, leader=0), said(2, leader=0)),
     "removing 127.0.0.21 now: the cluster has no leader"),
])
def test_no_removal_while_a_member_joins_or_without_leader(cluster: View, reason: str) -> None:
    assert verdicts.removal(cluster, A) == flavor.Removal(allowed=False, reason=reason)


def test_members_outside_the_cluster_and_learners_may_always_go() -> None:
    assert verdicts.removal(HEALTHY3, D).allowed
    with_learner = view([member(1, A), member(2, B), member(4, D, learner=True)],
                        said(1), said(2))
    assert verdicts.removal(with_learner, D).allowed


def test_the_leader_is_replaced_last_and_strangers_first() -> None:
    led_by_b = view([member(1, A), member(2, B), member(3, C)],
                    said(1, leader=2), said(2, leader=2), said(3, leader=2))
    candidates = [verdicts.Candidate(id=instance.ID(f"i-{x.name}"), address=x)
                  for x in (B, A, C, D)] + [verdicts.Candidate(id=instance.ID("i-x"),
                                                               address=None)]
    assert verdicts.order(led_by_b, candidates) == [
        "i-127.0.0.24", "i-x", "i-127.0.0.21", "i-127.0.0.23", "i-127.0.0.22"]


def test_health_is_a_started_member_of_a_cluster_with_a_leader() -> None:
    listed = [member(1, A), member(2, B), member(3, C, started=False)]
    assert verdicts.health(B, ok=True, said="", own=said(2), listed=listed) == flavor.Verdict(
        flavor.Health.HEALTHY,
        "127.0.0.22 is a started member of a 3-member cluster (leader 127.0.0.21)")
    assert verdicts.health(C, ok=True, said="", own=said(3), listed=listed) == flavor.Verdict(
        flavor.Health.UNHEALTHY, "127.0.0.23 has not started yet")
    assert verdicts.health(D, ok=True, said="", own=said(4), listed=listed).reason == (
        "127.0.0.24 is not a member of the cluster it answers for")
    assert verdicts.health(A, ok=False, said="GET x: connection refused", own=None,
                           listed=[]).reason == "127.0.0.21: GET x: connection refused"
    assert verdicts.health(A, ok=True, said="", own=said(1, leader=0, problems=(
        "etcdserver: no leader",)), listed=listed).reason == "127.0.0.21: etcdserver: no leader"


# Retrying what etcd refuses for now ---------------------------------------------------------

def refusal() -> errors.InfrakitError:
    """What our etcd client raises for etcd's strict reconfiguration check."""
    return errors.ConflictError("etcd at http://127.0.0.21:2379/v3/cluster/member/remove: "
                                "etcdserver: re-configuration failed due to not enough "
                                "started members", grpc_code=members.FAILED_PRECONDITION)


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugin, "_FIRST_RETRY", 0.01)
    monkeypatch.setattr(plugin, "_MAX_RETRY", 0.02)


async def test_a_change_refused_for_now_is_retried_and_logged(
        quick_retries: None, caplog: pytest.LogCaptureFixture) -> None:
    answers: list[Any] = [refusal(), errors.Unavailable("etcdserver: unhealthy cluster",
                                                        grpc_code=members.UNAVAILABLE), "done"]

    async def attempt() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return str(answer)
    caplog.set_level("INFO")
    assert await plugin.retrying("removing 127.0.0.21", PROPS, attempt) == "done"
    assert caplog.text.count("removing 127.0.0.21: etcd refused it for now") == 2


async def test_a_change_refused_past_the_timeout_fails_saying_what_etcd_said(
        quick_retries: None) -> None:
    async def attempt() -> None:
        raise refusal()
    props = settings.parse({"ReconfigureTimeout": "100ms"})
    with pytest.raises(errors.TemporaryError) as caught:
        await plugin.retrying("removing 127.0.0.21 from the cluster", props, attempt)
    assert caught.value.message.startswith(
        "removing 127.0.0.21 from the cluster: etcd refused it for 0.1s: etcd at "
        "http://127.0.0.21:2379/v3/cluster/member/remove: etcdserver: re-configuration failed")
    assert "strict reconfiguration check" in caught.value.message


async def test_other_errors_are_not_retried(quick_retries: None) -> None:
    calls: list[int] = []

    async def attempt() -> None:
        calls.append(1)
        raise errors.InvalidError("etcd: bad request", grpc_code=3)
    with pytest.raises(errors.InvalidError):
        await plugin.retrying("adding 127.0.0.21", PROPS, attempt)
    assert calls == [1]
