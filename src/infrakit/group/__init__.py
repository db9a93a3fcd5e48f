"""The default group plugin: keeps groups of instances at their declared state.

Pure parts (no I/O, tested with tables): ``config`` (the schema of a group's Properties),
``hashing`` (the v0.5 config hash), ``tags`` (the labels the controller owns), ``plan``
(what a commit will do, and its text), ``ordering`` (who goes first on scale-down),
``remediation`` and ``health`` (replacing unhealthy members within a budget), ``rolling``
(the next step of a rolling update), ``membership`` (missing and surplus members for
cattle and pets), ``decide`` (one reconcile's decision), ``backoff`` (the provisioning
circuit breaker), ``crashloop`` (members that keep dying young), ``inflight`` (work in
flight and its effects not yet listed), ``phase`` (where the group stands, and its counts),
``roster`` (the member rows of a status) and ``status`` (the status model and its ring of
reasons).

I/O parts: ``actions`` (create one member, remove one member), ``jobs`` (bounded batches,
no failure lost), ``destroying`` (DestroyInstances, DestroyGroup), ``supervisor`` (the
reconcile loop of one group) and ``controller`` (the ``spi.group.Plugin`` served as
``group``). Everything talks to plugins through the spi Protocols only, so the tests
drive it with the fakes of :mod:`infrakit.testing` and fake time (``clock``).
"""
