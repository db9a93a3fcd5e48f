"""instance-host: hosts on one machine, each a set of namespaces joined to a private network.

Built on :class:`infrakit.plugins.instance.process.Plugin` (records, adoption after a
restart, exit watching, Destroy's TERM then KILL): a host is an instance whose process is
``nsenter --net=<host's netns> unshare --pid --fork --kill-child --mount-proc --uts`` running
:mod:`.init` as the host's PID 1 with the spec's Init as its boot script. When that PID 1
dies (``kill -9`` of it is "the host goes down"), the kernel ends every process of the host,
the plugin sees the instance's process exit, removes the host's namespace (its veth goes
with it) and, with ``--notify``, wakes the group.

The host's address is its LogicalID when that is an address of the network, else the lowest
free one; it is the tag ``host.address``. The hostname is the LogicalID, else the ID.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import sys
from collections.abc import Callable

from pydantic import Field

from infrakit import errors
from infrakit.plugins.instance import process
from infrakit.plugins.instance.host import init, network
from infrakit.spi import instance

log = logging.getLogger(__name__)

ADDRESS_TAG = "host.address"
"""The tag that carries a host's address on the private network."""
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,62})$")


class Properties(process.Properties):
    """instance-process's Properties, plus the host's name."""

    hostname: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$")
    """The host's name: letters, digits, '-' and '.', at most 63 (default: its LogicalID when
    that is a valid name, else its ID)."""


class Plugin(process.Plugin):
    """Hosts on the private ``network``, their switch namespace named ``switch``."""

    kind = "instance-host"
    properties_type = Properties

    def __init__(self, directory: str | os.PathLike[str], *,
                 network_: ipaddress.IPv4Network, switch: str,
                 on_change: Callable[[], None] | None = None) -> None:
        self.network = network_
        self.switch = switch
        network.ensure_switch(switch, network_)
        super().__init__(directory, on_change=on_change)

    def namespace(self, iid: str) -> str:
        """The network namespace of host ``iid`` (``/run/netns/<name>``)."""
        return f"{self.switch}-{iid.removeprefix('instance-')[:12]}"

    def remove_network(self) -> None:
        """Remove the switch (only once no host is left on it)."""
        if self.describe_instances({}):
            raise errors.ConflictError(f"hosts still run on {self.switch}: destroy them first")
        network.remove_switch(self.switch)

    def _launch(self, iid: instance.ID, spec: instance.Spec,
                wanted: process.Properties) -> tuple[list[str], instance.Spec]:
        hostname = _hostname(spec, wanted, iid)
        used = [record.tags.get(ADDRESS_TAG, "") for record in self._records.values()]
        address = network.allocate(self.network, wanted=spec.logical_id, used=used)
        namespace = self.namespace(iid)
        network.attach(namespace, switch=self.switch, address=address, network=self.network,
                       hostname=hostname)
        spec = spec.model_copy(update={"tags": {**spec.tags, ADDRESS_TAG: str(address)}})
        argv = ["nsenter", f"--net={network.NETNS / namespace}",
                "unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--uts",
                sys.executable, "-m", init.__name__, hostname,
                # PID 1 must be done before Destroy's own KILL: it has most of the grace
                f"{wanted.stop_timeout * 0.8:g}", spec.init]
        return argv, spec

    def _release(self, record: process.Record) -> None:
        network.detach(self.namespace(record.id))



def _hostname(spec: instance.Spec, wanted: process.Properties, iid: str) -> str:
    chosen = getattr(wanted, "hostname", None)
    if chosen is not None:
        return str(chosen)
    name = spec.logical_id or iid
    return name if _HOSTNAME.match(name) else iid
