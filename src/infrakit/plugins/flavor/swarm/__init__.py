"""The ``flavor-swarm`` plugin: Docker swarm mode managers and workers as groups.

:mod:`.properties` reads a group's ``Properties``, :mod:`.swarm` talks to the nodes' engines
(the Engine API on their unix sockets), :mod:`.quorum` decides (health, who may go, who goes
last) without I/O, :mod:`.script` writes the join into each node's Init, :mod:`.plugin` ties
these to the Flavor interface (typed objects ``manager`` and ``worker``, as in v0.5) and
:mod:`.serve` runs it as ``infrakit-flavor-swarm``.
"""
