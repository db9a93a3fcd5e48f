"""The ``infrakit`` command line: commands that parse, call the library and print.

``main`` is the root (named and dynamic commands), ``plugin``/``group``/``instance``/``flavor``
hold the verbs, ``launch``-related work lives in ``infrakit.rpc.launch``, ``aliases`` holds the
original binaries' names, ``entry`` runs entry-point plugins.
"""
