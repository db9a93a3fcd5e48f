"""The reference plugins: each implements one ``infrakit.spi`` Protocol and runs as its own process.

``instance/`` holds instance plugins (``file``, ``process``), ``flavor/`` holds flavor plugins
(``vanilla``, ``combo``) and the health probes any flavor may use. Every plugin module has a
``Plugin`` class (usable in-process, e.g. by tests) and a ``run(argv)`` entry point that parses
the original InfraKit flags and serves the object on a unix socket.
"""
