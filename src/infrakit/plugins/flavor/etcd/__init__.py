"""The ``flavor-etcd`` plugin: group members that form one etcd cluster, kept at quorum.

Served by ``infrakit-flavor-etcd`` (:mod:`.serve`). Members are pets whose logical IDs are
their addresses; each runs etcd on ``<logical ID>:<ClientPort>`` and ``:<PeerPort>``
(:mod:`.settings`). The flavor talks to the cluster through the members' client URLs, so
it must reach that port on every member.

- Prepare (:mod:`.joining`, :mod:`.script`): the first members bootstrap a cluster with
  ``--initial-cluster-state new``; later ones are added with MemberAdd first (after the
  member of a dead predecessor with the same name or peer URL is removed) and start empty
  with ``--initial-cluster-state existing``.
- Healthy (:mod:`.verdicts`): a started member of a cluster that has a leader.
- CanRemove, Order (:mod:`.verdicts`): never below a quorum of healthy started members,
  never while a member is still catching up; the raft leader last.
- Drain: MemberRemove (after moving leadership away from a leader), retried while etcd's
  strict reconfiguration check refuses it right after a member started.

The I/O is :mod:`.members` (the cluster API) and :mod:`.view` (one look at the cluster);
:mod:`.plugin` puts them together.
"""
