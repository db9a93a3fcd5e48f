"""Wire types and interfaces: what plugins say to each other.

One module per interface. Pure data and ``typing.Protocol``s; no I/O, and nothing of
ours is imported here but :mod:`infrakit.errors`.
"""
