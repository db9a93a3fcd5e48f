"""The instance-libvirt plugin object: each instance is a libvirt domain (a virtual machine).

Served by ``infrakit-instance-libvirt`` (:mod:`.serve`); the group controller provisions,
lists and destroys VMs through it. Methods are sync and thread-safe (the server runs each
call in a thread; libvirt's connection serves them all).

- **Provision** picks an ID (``infrakit-%08x``, also the domain's name, as v0.5), makes the
  instance's own files in the plugin's dir (a qcow2 overlay of ``Image`` or a blank disk,
  the NoCloud seed with the Init, :mod:`.seed`; the console log), picks free host ports for
  forwards without one, then defines the domain (:mod:`.domain`), with its record in its
  ``<metadata>`` (:mod:`.metadata`), and starts it. Anything that fails undoes the rest.
- **Describe** is one ``listAllDomains``; the record of each of our domains (name prefix and
  our element) is read once and cached by UUID and run (this plugin is its only writer:
  Label updates the cache). Only running guests are instances: a guest that stopped on its
  own (powered off, crashed, killed) is undefined and its files removed, so nothing leaks
  when the group replaces it.
- **Destroy** presses the power button, waits up to ``StopTimeout`` for the guest to power
  off, pulls the plug if it did not, undefines the domain and removes the instance's own
  files. Attachments are never touched. A domain without our record is refused.
- **Label** merges tags into the record (v0.5 replaced the whole set).

``on_change`` (from libvirt's event thread) is called when a guest stops on its own.
"""

from __future__ import annotations

import datetime
import logging
import os
import pathlib
import re
import secrets
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from infrakit import errors
from infrakit.plugins.instance.libvirt import connection, disks, domain, metadata, ports, seed
from infrakit.plugins.instance.libvirt import properties as props
from infrakit.spi import instance

log = logging.getLogger(__name__)

DEFAULT_URI = "qemu:///session"
PREFIX = "infrakit-"
"""Every domain we make is named ``infrakit-<8 hex digits>`` (v0.5's format)."""
MAX_LOGICAL_ID = 253
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_POLL = 0.1
_UNSTARTED_GRACE = 600.0
"""A stopped domain of ours that never ran may be another plugin's Provision in progress:
left alone for this long."""


class Plugin:
    """Instances as libvirt domains on ``uri``, with their files in ``directory``."""

    def __init__(self, directory: str | os.PathLike[str], *, uri: str = DEFAULT_URI,
                 on_change: Callable[[], None] | None = None) -> None:
        self._dir = pathlib.Path(directory)
        self._dir.mkdir(mode=0o711, parents=True, exist_ok=True)
        self.on_change = on_change
        """Called from libvirt's event thread when a guest stops on its own."""
        self._connection = connection.Connection(
            uri, on_lifecycle=self._stopped if on_change is not None else None)
        self._lock = threading.Lock()
        self._busy: set[str] = set()
        """Names being provisioned or destroyed here: not to be reaped, not news."""
        self._reserved: set[int] = set()
        """Host ports picked for guests not yet started."""
        self._records: dict[str, tuple[int, metadata.Record]] = {}
        """Each domain's record by UUID, with the run (domain ID) it was read in."""

    @property
    def directory(self) -> pathlib.Path:
        return self._dir

    def close(self) -> None:
        self._connection.close()

    # -- the Instance interface ------------------------------------------------------------

    def validate(self, properties: Any) -> None:
        props.check(props.parse(properties))

    def provision(self, spec: instance.Spec) -> instance.ID:
        wanted = props.check(props.parse(spec.properties))
        _check_logical_id(spec.logical_id)
        attached = _attachments(spec.attachments or [])
        conn = self._connection.get()
        with self._lock:
            name = self._new_name(conn)
            self._busy.add(name)
        try:
            return self._provision(conn, name, spec, wanted, attached)
        finally:
            with self._lock:
                self._busy.discard(name)

    def label(self, instance: instance.ID, labels: dict[str, str]) -> None:
        libvirt = connection.bindings()
        found = self._domain(instance)
        with connection.translated(self._connection, f"label {instance}", instance=instance):
            record = self._read(found)
            if record is None:
                raise _not_ours(instance)
            record = record.with_tags(labels)
            scope = libvirt.VIR_DOMAIN_AFFECT_CONFIG
            if found.isActive():
                scope |= libvirt.VIR_DOMAIN_AFFECT_LIVE
            found.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                              metadata.element(record, prefixed=False), metadata.KEY,
                              metadata.NAMESPACE, scope)
        with self._lock:
            self._records[found.UUIDString()] = (found.ID(), record)

    def destroy(self, instance: instance.ID) -> None:
        with self._lock:
            self._busy.add(instance)
        try:
            found = self._domain(instance)
            with connection.translated(self._connection, f"destroy {instance}",
                                       instance=instance):
                record = self._read(found)
                if record is None:
                    raise _not_ours(instance)
                clean = self._stop(found, timeout=record.stop_timeout)
                self._undefine(found, record)
            log.info("destroyed %s%s", instance,
                     "" if clean else ": no power-off within StopTimeout, plug pulled")
        finally:
            with self._lock:
                self._busy.discard(instance)

    def describe_instances(self, tags: dict[str, str], properties: bool = False
                           ) -> list[instance.Description]:
        conn = self._connection.get()
        with connection.translated(self._connection, "list domains"):
            domains = conn.listAllDomains(0)
        found, seen = [], set()
        for candidate in domains:
            name = candidate.name()
            if not name.startswith(PREFIX):
                continue
            try:
                record = self._cached(candidate)
            except connection.bindings().libvirtError as exc:
                log.debug("skipping %s: %s", name, exc.get_error_message())
                continue  # gone meanwhile, or not ours
            if record is None:
                continue
            seen.add(candidate.UUIDString())
            if candidate.ID() == -1:
                self._reap(candidate, record)
                continue
            shown = {**record.tags, **metadata.forward_tags(record)}
            if all(shown.get(key) == value for key, value in tags.items()):
                found.append(_describe(candidate, record, shown, detailed=properties))
        with self._lock:
            for uuid in set(self._records) - seen:
                del self._records[uuid]
        found.sort(key=lambda description: description.id)
        return found

    # -- provisioning ----------------------------------------------------------------------

    def _provision(self, conn: Any, name: str, spec: instance.Spec, wanted: props.Properties,
                   attached: Sequence[domain.Disk]) -> instance.ID:
        made: list[pathlib.Path] = []
        nics = self._nics(wanted)
        try:
            own = self._own_disk(name, wanted, made)
            seeded = self._seed(name, spec, wanted, made)
            console = self._dir / f"{name}.console.log"
            made.append(console)
            record = metadata.Record(
                logical_id=spec.logical_id, tags=dict(spec.tags),
                forwards=tuple(forward for nic in nics for forward in nic.forwards),
                files=tuple(str(path) for path in made), stop_timeout=wanted.stop_timeout,
                created=time.time())
            layout = domain.Layout(
                name=name, domain_type=self._domain_type(conn, wanted), wanted=wanted,
                record=record, cmdline=props.cmdline(wanted) if wanted.kernel else "",
                disks=(*own, *attached, *seeded), nics=tuple(nics), console_log=str(console),
                title=spec.logical_id)
            self._define_and_start(conn, name, domain.xml(layout))
        except BaseException:
            _remove(made)
            raise
        finally:
            with self._lock:
                self._reserved.difference_update(
                    forward.host_port for nic in nics for forward in nic.forwards)
        log.info("provisioned %s%s", name, "".join(
            f", {forward.protocol} {forward.target} -> {forward.guest_port}"
            for forward in record.forwards))
        return instance.ID(name)

    def _define_and_start(self, conn: Any, name: str, document: str) -> None:
        with connection.translated(self._connection, f"define {name}", instance=name):
            defined = conn.defineXML(document)
        try:
            with connection.translated(self._connection, f"start {name}", instance=name):
                defined.create()
        except BaseException:
            libvirt = connection.bindings()
            try:
                defined.undefineFlags(_undefine_flags(libvirt))
            except libvirt.libvirtError as exc:
                log.warning("%s did not start and cannot be undefined: %s", name,
                            exc.get_error_message())
            raise

    def _new_name(self, conn: Any) -> str:
        libvirt = connection.bindings()
        while True:
            name = f"{PREFIX}{secrets.randbits(32):08x}"
            if name in self._busy:
                continue
            try:
                conn.lookupByName(name)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return name
                raise connection.error(self._connection, exc, what="look up names") from None

    def _nics(self, wanted: props.Properties) -> list[domain.Nic]:
        """The network cards, each forward's host port picked (and reserved) when 0."""
        with self._lock:
            taken = {forward.host_port for _, record in self._records.values()
                     for forward in record.forwards} | self._reserved
            nics = []
            for nic in wanted.nics():
                forwards = []
                for forward in nic.forwards or []:
                    port = forward.host_port or ports.pick(
                        forward.address, protocol=forward.protocol, taken=taken)
                    taken.add(port)
                    self._reserved.add(port)
                    forwards.append(metadata.Forward(protocol=forward.protocol,
                                                     address=forward.address, host_port=port,
                                                     guest_port=forward.guest_port))
                nics.append(domain.Nic(type=nic.type, source=nic.source,
                                       forwards=tuple(forwards)))
            return nics

    def _own_disk(self, name: str, wanted: props.Properties, made: list[pathlib.Path]
                  ) -> list[domain.Disk]:
        if wanted.image is None and wanted.disk is None:
            return []
        path = self._dir / f"{name}.qcow2"
        if wanted.image is not None:
            disks.overlay(path, base=wanted.image, size_mib=wanted.disk)
        else:
            disks.blank(path, size_mib=wanted.disk or 0)
        made.append(path)
        return [domain.Disk(path=str(path), format="qcow2")]

    def _seed(self, name: str, spec: instance.Spec, wanted: props.Properties,
              made: list[pathlib.Path]) -> list[domain.Disk]:
        if not spec.init and not wanted.metadata:
            return []
        path = self._dir / f"{name}.seed.iso"
        lid = spec.logical_id
        hostname = lid if lid and _HOSTNAME.fullmatch(lid) else name
        made.append(path)
        seed.write(path, user_data=spec.init,
                   meta=seed.meta_data(name, hostname=hostname, extra=wanted.metadata or {}))
        return [domain.Disk(path=str(path), format="raw", readonly=True)]

    def _domain_type(self, conn: Any, wanted: props.Properties) -> str:
        if wanted.domain_type:
            return wanted.domain_type
        with connection.translated(self._connection, "read the host's capabilities"):
            capabilities = ET.fromstring(conn.getCapabilities())
        host_arch = capabilities.findtext("host/cpu/arch")
        for guest in capabilities.iterfind("guest"):
            arch = guest.find("arch")
            if guest.findtext("os_type") == "hvm" and arch is not None and \
                    arch.get("name") == host_arch and arch.find("domain[@type='kvm']") is not None:
                return "kvm"
        return "qemu"

    # -- reading and removing domains ------------------------------------------------------

    def _domain(self, iid: str) -> Any:
        conn = self._connection.get()
        with connection.translated(self._connection, f"look up {iid}", instance=iid):
            return conn.lookupByName(iid)

    def _read(self, found: Any) -> metadata.Record | None:
        """The domain's record; ``None`` when it has none (not ours)."""
        libvirt = connection.bindings()
        try:
            text = found.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, metadata.NAMESPACE, 0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
                return None
            raise
        try:
            return metadata.parse(text)
        except ValueError as exc:
            log.warning("%s: unreadable record, not ours: %s", found.name(), exc)
            return None

    def _cached(self, found: Any) -> metadata.Record | None:
        uuid, run = found.UUIDString(), found.ID()
        with self._lock:
            known = self._records.get(uuid)
        if known is not None and known[0] == run:
            return known[1]
        record = self._read(found)
        if record is not None:
            with self._lock:
                self._records[uuid] = (run, record)
        return record

    def _stop(self, found: Any, *, timeout: float) -> bool:
        """Power the guest off, gracefully when it obeys within ``timeout``; True if it did."""
        libvirt = connection.bindings()
        if not found.isActive():
            return True
        if timeout > 0:
            try:
                found.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
                    raise  # OPERATION_INVALID: it stopped meanwhile
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not found.isActive():
                    return True
                time.sleep(_POLL)
        try:
            found.destroy()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
                raise
        return False

    def _undefine(self, found: Any, record: metadata.Record) -> None:
        libvirt = connection.bindings()
        uuid = found.UUIDString()
        try:
            found.undefineFlags(_undefine_flags(libvirt))
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise
        _remove(pathlib.Path(path) for path in record.files)
        with self._lock:
            self._records.pop(uuid, None)

    def _reap(self, found: Any, record: metadata.Record) -> None:
        """Undefine a guest of ours that stopped on its own, and remove its files."""
        name = found.name()
        libvirt = connection.bindings()
        with self._lock:
            if name in self._busy:
                return
        try:
            _, reason = found.state()
            if reason == libvirt.VIR_DOMAIN_SHUTOFF_UNKNOWN and \
                    time.time() - record.created < _UNSTARTED_GRACE:
                return  # never ran: maybe being provisioned by another plugin
            self._undefine(found, record)
        except libvirt.libvirtError as exc:
            log.warning("cannot remove stopped instance %s: %s", name, exc.get_error_message())
            return
        log.warning("instance %s stopped on its own (%s); removed it and its files", name,
                    _SHUTOFF_REASONS.get(reason, reason))

    def _stopped(self, name: str, what: str) -> None:
        """libvirt says guest ``name`` stopped: news for the group unless we did it."""
        with self._lock:
            ours = name.startswith(PREFIX) and name not in self._busy
        if ours and self.on_change is not None:
            log.info("instance %s %s", name, what)
            self.on_change()


_SHUTOFF_REASONS = {0: "never started", 1: "powered off", 2: "destroyed", 3: "crashed",
                    4: "saved", 5: "failed", 6: "snapshot restored"}


def _undefine_flags(libvirt: Any) -> int:
    """Undefine whatever libvirt keeps beside the domain too (snapshots, saved state)."""
    flags = 0
    for name in ("VIR_DOMAIN_UNDEFINE_MANAGED_SAVE", "VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA",
                 "VIR_DOMAIN_UNDEFINE_NVRAM", "VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA"):
        flags |= int(getattr(libvirt, name, 0))
    return flags


def _describe(found: Any, record: metadata.Record, tags: Mapping[str, str], *,
              detailed: bool) -> instance.Description:
    details = None
    if detailed:
        created = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
        details = {"Domain": found.name(), "UUID": found.UUIDString(),
                   "Created": created.isoformat(),
                   "Forwards": [{"Protocol": forward.protocol, "Host": forward.target,
                                 "GuestPort": forward.guest_port}
                                for forward in record.forwards],
                   "Files": list(record.files)}
    return instance.Description(id=instance.ID(found.name()), logical_id=record.logical_id,
                                tags=dict(tags), properties=details)


def _check_logical_id(lid: str | None) -> None:
    """A logical ID names the guest (its title, its hostname when it is a valid one)."""
    if lid is None:
        return
    problem = None
    if not lid:
        problem = "is empty"
    elif any(char.isspace() or not char.isprintable() for char in lid):
        problem = "contains whitespace or control characters"
    elif len(lid) > MAX_LOGICAL_ID:
        problem = f"is {len(lid)} characters long; at most {MAX_LOGICAL_ID} are allowed"
    if problem is not None:
        raise errors.InvalidError(f"Spec.LogicalID: {lid!r} {problem}", field="Spec.LogicalID")


def _attachments(attachments: Sequence[instance.Attachment]) -> list[domain.Disk]:
    """Attachments as disks: ``{"ID": "/path/disk.img", "Type": "disk"}`` or a libvirt
    volume ``{"ID": "pool/volume", "Type": "volume"}``. They outlive the instance."""
    found = []
    for index, attachment in enumerate(attachments):
        field = f"Spec.Attachments[{index}]"
        if attachment.type == "disk":
            if not os.path.isabs(attachment.id) or not os.path.isfile(attachment.id):
                raise errors.InvalidError(f"{field}.ID: expected an existing disk image "
                                          f"(absolute path), got {attachment.id!r}",
                                          field=f"{field}.ID")
            image = disks.info(attachment.id, field=f"{field}.ID")
            found.append(domain.Disk(path=attachment.id, format=image.format))
        elif attachment.type == "volume":
            pool, _, volume = attachment.id.partition("/")
            if not pool or not volume:
                raise errors.InvalidError(f"{field}.ID: expected POOL/VOLUME, got "
                                          f"{attachment.id!r}", field=f"{field}.ID")
            found.append(domain.Disk(pool=pool, volume=volume, format=None))
        else:
            raise errors.InvalidError(f"{field}.Type: expected disk or volume, got "
                                      f"{attachment.type!r}", field=f"{field}.Type")
    return found


def _not_ours(iid: str) -> errors.InfrakitError:
    return errors.PermanentError(f"domain {iid!r} is not an instance of instance-libvirt "
                                 "(no infrakit record in its metadata): left alone",
                                 instance=iid)


def _remove(paths: Iterable[pathlib.Path]) -> None:
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot remove %s: %s", path, exc)
