"""Pure decisions about one ensemble: its membership, quorums, who may go now, who goes last.

No I/O: :mod:`.words` observes the members, :mod:`.plugin` calls these functions with what it
saw and acts on their answers. The membership is ZooKeeper's dynamic configuration, one
``server.<id>=<address>:<peer port>:<election port>:<role>;<address>:<client port>`` line per
member, with the version ZooKeeper gave it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

PARTICIPANT = "participant"
"""A voting member's role."""


@dataclasses.dataclass(frozen=True, slots=True)
class Server:
    """One line of the dynamic configuration."""

    id: int
    host: str
    peer_port: int
    election_port: int
    client_port: int
    role: str = PARTICIPANT

    def line(self) -> str:
        """``server.12=127.0.0.12:2888:3888:participant;127.0.0.12:2181``."""
        host = _bracket(self.host)
        return (f"server.{self.id}={host}:{self.peer_port}:{self.election_port}:{self.role};"
                f"{host}:{self.client_port}")

    @property
    def voting(self) -> bool:
        return self.role == PARTICIPANT


@dataclasses.dataclass(frozen=True, slots=True)
class Membership:
    """An ensemble's configuration: its servers by ID and ZooKeeper's version of it."""

    servers: Mapping[int, Server]
    version: int = 0

    @property
    def voters(self) -> list[Server]:
        return [server for server in self.servers.values() if server.voting]

    def with_server(self, server: Server) -> Membership:
        return Membership({**self.servers, server.id: server}, version=self.version)

    def text(self) -> str:
        """The dynamic configuration file (without a version: ZooKeeper adopts the leader's)."""
        return "".join(self.servers[key].line() + "\n" for key in sorted(self.servers))


def majority(voters: int) -> int:
    """How many voting members make a quorum of ``voters``."""
    return voters // 2 + 1


def parse_line(key: str, value: str) -> Server | None:
    """A ``server.N`` line of ``conf``'s membership; None when it is not one."""
    if not key.startswith("server."):
        return None
    try:
        number = int(key.removeprefix("server."))
        quorum, _, client = value.partition(";")
        host, peer, election, role = _split_quorum(quorum)
        client_port = int(client.rsplit(":", 1)[-1]) if client else 0
        return Server(number, host, int(peer), int(election), client_port, role)
    except ValueError:
        return None


def parse_conf(text: str) -> tuple[int | None, Membership | None]:
    """``conf``'s answer: the member's own server ID and the membership it follows (None for
    what the answer does not say)."""
    me: int | None = None
    servers: dict[int, Server] = {}
    version: int | None = None
    for raw in text.splitlines():
        key, sep, value = raw.strip().partition("=")
        if not sep:
            continue
        if key == "serverId":
            me = _int(value)
        elif key == "version":
            version = _int(value, base=16)
        elif (server := parse_line(key, value)) is not None:
            servers[server.id] = server
    if not servers:
        return me, None
    return me, Membership(servers, version=version or 0)


def newest(found: Iterable[Membership | None]) -> Membership | None:
    """The membership with the highest version among those seen."""
    seen = [membership for membership in found if membership is not None]
    return max(seen, key=lambda membership: membership.version) if seen else None


@dataclasses.dataclass(frozen=True, slots=True)
class Removal:
    """Whether a member may go now, and why not."""

    allowed: bool
    reason: str = ""


def removal(name: str, server: int | None, *, membership: Membership | None,
            healthy: Iterable[int], leaving: Iterable[int] = ()) -> Removal:
    """May the member ``name`` (server ``server``) be removed or replaced now?

    ``healthy`` are the servers that serve as leader or follower; ``leaving`` the servers
    already allowed to go and not gone yet. A member that is not a healthy voter may always
    go (it adds nothing to the quorum, and replacing it may heal the ensemble); a healthy
    voter only while the other healthy voters, less those leaving, are still a quorum of the
    voting members.
    """
    if membership is None:
        return Removal(True)
    voters = {voter.id for voter in membership.voters}
    well = set(healthy) & voters
    if server not in voters or server not in well:
        return Removal(True)
    left = len(well - {server} - set(leaving))
    need = majority(len(voters))
    if left >= need:
        return Removal(True)
    return Removal(False, f"replacing {name} would leave {left} of {len(voters)} voting "
                          f"members (a quorum is {need})")


def can_join(membership: Membership, *, healthy: Iterable[int]) -> bool:
    """Whether adding one synced member keeps a quorum: the healthy voters and the newcomer
    are a majority of the voters it makes."""
    voters = {voter.id for voter in membership.voters}
    return len(set(healthy) & voters) + 1 >= majority(len(voters) + 1)


def order(ids: Sequence[str], modes: Mapping[str, str]) -> list[str]:
    """``ids`` in the order to replace them: members that do not serve first, then
    followers, the leader last (the input order within each)."""
    rank = {"leader": 2, "follower": 1}
    return sorted(ids, key=lambda member: rank.get(modes.get(member, ""), 0))


def _split_quorum(text: str) -> tuple[str, str, str, str]:
    """``host:peer:election[:role]``, ``host`` maybe an IPv6 address in brackets."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        parts = rest.lstrip(":").split(":")
    else:
        host, *parts = text.split(":")
    if len(parts) == 2:
        parts.append(PARTICIPANT)
    if len(parts) != 3:
        raise ValueError(text)
    return host, parts[0], parts[1], parts[2]


def address(host: str, port: int) -> str:
    """``host:port``, an IPv6 host in brackets."""
    return f"{_bracket(host)}:{port}"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _int(text: str, *, base: int = 10) -> int | None:
    try:
        return int(text.strip(), base)
    except ValueError:
        return None
