"""The ``flavor-zookeeper`` plugin: ZooKeeper ensembles as groups of pets.

Each member's logical ID is its address; :mod:`.script` writes the member's config and
``myid`` and starts it, :mod:`.words` asks members how they are (ZooKeeper's four-letter
words), :mod:`.ensemble` decides (quorums, who may go, who goes last), :mod:`.reconfig`
changes the ensemble through ZooKeeper's dynamic reconfiguration, :mod:`.plugin` ties these
to the Flavor interface and :mod:`.serve` runs it as ``infrakit-flavor-zookeeper``.
"""
