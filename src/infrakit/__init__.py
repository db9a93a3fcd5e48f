"""InfraKit for Python: declarative, self-healing infrastructure.

Wire-compatible with Docker's InfraKit v0.5 plugins. See README.md for the concepts.
"""

__version__ = "0.1.0"
