"""Host ports for forwards whose ``HostPort`` is 0: free now, and not promised to a guest.

QEMU binds a forward's port only when the guest starts, so a port the kernel calls free may
already belong to an instance being provisioned, or to a stopped one: the plugin passes the
ports its instances hold as ``taken``. Another program may still take the port in between;
then the guest fails to start, and Provision says so (the group tries again).
"""

from __future__ import annotations

import socket
from collections.abc import Collection

from infrakit import errors

_TRIES = 100


def pick(address: str, *, protocol: str, taken: Collection[int]) -> int:
    """A port on ``address`` that the kernel calls free and that is not in ``taken``."""
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    for _ in range(_TRIES):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind((address, 0))
            except OSError as exc:
                raise errors.InvalidError(
                    f"Forwards: cannot listen on {address}: {exc.strerror}",
                    field="Properties.Networks") from None
            port: int = probe.getsockname()[1]
        if port not in taken:
            return port
    raise errors.TemporaryError(f"no free {protocol} port on {address} after {_TRIES} tries")
