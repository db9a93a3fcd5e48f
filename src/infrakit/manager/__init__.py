"""The manager: persisted specs (store backends), leadership (election backends), and the
group proxy that only acts while it leads.

Store backends (:mod:`.store_file`, :mod:`.store_etcd`) implement :class:`.store.Store`;
leadership backends (:mod:`.leader_file`, :mod:`.leader_etcd`) implement
:class:`.leader.Leadership`. A store backend never imports another.
"""
