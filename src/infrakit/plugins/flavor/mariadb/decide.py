"""The MariaDB flavor's judgements, as pure functions of what the checks found.

- :func:`verdict`: a primary is Healthy when it takes a write; a replica when its IO and SQL
  threads run and it is at most ``MaxLag`` behind. A member that refuses the flavor's account
  is Unknown (a wrong password is not cured by replacing the server), and so is one that is
  not there yet within its ``Startup`` window after Prepare (:func:`starting`).
- :func:`removal`: a replica may go only while the primary takes writes (else its successor
  has nothing to catch up from), and not if it is the last caught-up replica of several; the
  primary may go only when every replica has applied its last write (or when it does not
  answer at all: then there is nothing more the replicas could get from it).
- :func:`order`: replicas first (those behind first), the primary last.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from infrakit import durations
from infrakit.plugins.flavor.mariadb import config, state
from infrakit.spi import flavor, instance

YES = "Yes"


def verdict(member: state.Member, *, max_lag: float) -> flavor.Verdict:
    """Flavor.Healthy's answer for one member, with the reason."""
    if member.denied:
        return flavor.Verdict(flavor.Health.UNKNOWN,
                              f"{member.address}: {member.error} (check Properties.User and "
                              "Properties.Password)")
    if not member.answered:
        return _unhealthy(f"{member.address}: {member.error}")
    if member.role == config.PRIMARY:
        if not member.wrote:
            return _unhealthy(f"primary {member.address} is read-only, it takes no writes")
        return flavor.Verdict(flavor.Health.HEALTHY,
                              f"primary {member.address} takes writes (at {_at(member.gtid)})")
    trouble = replica_trouble(member, max_lag=max_lag)
    if trouble:
        return _unhealthy(f"replica {member.address} {trouble}")
    return flavor.Verdict(flavor.Health.HEALTHY,
                          f"replica {member.address} of {member.source}, {member.behind}s "
                          f"behind (at {_at(member.gtid)})")


def starting(verdict: flavor.Verdict, *, age: float | None,
             startup: float) -> flavor.Verdict:
    """``verdict``, but Unknown rather than Unhealthy while the member is within its
    ``startup`` window (``age`` seconds old): it may not serve or have caught up yet."""
    if verdict.health != flavor.Health.UNHEALTHY or age is None or not 0 <= age < startup:
        return verdict
    return flavor.Verdict(flavor.Health.UNKNOWN,
                          f"starting ({durations.format_duration(age)} of "
                          f"{durations.format_duration(startup)}): {verdict.reason}")


def replica_trouble(member: state.Member, *, max_lag: float) -> str:
    """Why a replica that answered is not caught up (``""`` when it is), in a few words."""
    if not member.replicating:
        return "does not replicate: no primary is configured"
    for thread, running in (("IO", member.io_running), ("SQL", member.sql_running)):
        if running != YES:
            said = f": {member.last_error}" if member.last_error else ""
            return f"{thread} thread {running or 'No'}{said}"
    if member.behind is None:
        return f"does not know how far behind {member.source} it is"
    if member.behind > max_lag:
        return (f"is {member.behind}s behind {member.source} (at most "
                f"{durations.format_duration(max_lag)})")
    return ""


def caught_up(member: state.Member, *, max_lag: float) -> bool:
    """A replica that answers, replicates and is within the lag bound."""
    return member.answered and not replica_trouble(member, max_lag=max_lag)


def removal(target: state.Member, *, primary: state.Member | None,
            replicas: Sequence[state.Member], max_lag: float) -> flavor.Removal:
    """Whether ``target`` may be destroyed now, given the ``primary`` (``None`` when the group
    has none) and every replica (``target`` among them when it is one)."""
    if target.role == config.PRIMARY:
        return _primary_removal(target, replicas=replicas)
    if primary is None:
        return _deny(f"replacing replica {target.logical_id} now would leave it nothing to "
                     "catch up from: the group has no primary")
    if not primary.wrote:
        why = primary.error or "is read-only"
        return _deny(f"replacing replica {target.logical_id} now would leave it nothing to "
                     f"catch up from: primary {primary.address} {why}")
    others = [r for r in replicas if r.logical_id != target.logical_id]
    if others and caught_up(target, max_lag=max_lag) and not any(
            caught_up(r, max_lag=max_lag) for r in others):
        return _deny(f"replacing {target.logical_id} would leave 0 of {len(others) + 1} "
                     "replicas caught up")
    return flavor.Removal(allowed=True)


def _primary_removal(target: state.Member, *, replicas: Sequence[state.Member]
                     ) -> flavor.Removal:
    if not target.answered:
        return flavor.Removal(allowed=True)  # nothing more to get from it; its data stays
    for replica in replicas:
        if replica.applied:
            continue
        if not replica.answered:
            why = f"does not answer ({replica.error})"
        elif not replica.replicating or replica.io_running != YES or replica.sql_running != YES:
            why = f"is not replicating ({replica_trouble(replica, max_lag=float('inf'))})"
        else:
            why = (f"has not applied {_at(target.gtid)} yet (it is at {_at(replica.gtid)})")
        return _deny(f"replacing primary {target.logical_id} would lose writes: replica "
                     f"{replica.logical_id} {why}")
    return flavor.Removal(allowed=True)


def order(wanted: config.Properties, members: Sequence[instance.Description], *,
          behind: Collection[str] = ()) -> list[instance.ID]:
    """The members' IDs: the replicas that are ``behind`` (IDs; broken or lagging ones, which
    lose nothing by going), then the other replicas, by logical ID; the primary last."""
    def key(member: instance.Description) -> tuple[bool, bool, str, str]:
        return (config.role(wanted, member) == config.PRIMARY, member.id not in behind,
                member.logical_id or "", member.id)

    return [member.id for member in sorted(members, key=key)]


def _unhealthy(reason: str) -> flavor.Verdict:
    return flavor.Verdict(flavor.Health.UNHEALTHY, reason)


def _deny(reason: str) -> flavor.Removal:
    return flavor.Removal(allowed=False, reason=reason)


def _at(gtid: str) -> str:
    return gtid or "the start"
