"""instance-libvirt's input checks and the documents it writes, without libvirt.

Validate and the checks at the start of Provision never reach libvirt, so a bad spec is
refused the same with or without a daemon; the domain XML, the metadata record and the seed's
meta-data are pure functions.
"""

from __future__ import annotations

import pathlib
import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest

from infrakit import errors
from infrakit.plugins.instance.libvirt import domain, metadata, plugin, ports, seed
from infrakit.plugins.instance.libvirt import properties as props
from infrakit.spi import instance


@pytest.fixture
def vms(tmp_path: pathlib.Path) -> Iterator[plugin.Plugin]:
    found = plugin.Plugin(tmp_path / "state", uri="test:///nowhere")
    try:
        yield found
    finally:
        found.close()


@pytest.fixture
def kernel(tmp_path: pathlib.Path) -> str:
    path = tmp_path / "vmlinuz"
    path.write_bytes(b"not really a kernel")
    return str(path)


@pytest.mark.parametrize(("extra", "message"), [
    ({"Kernal": "/k"}, "Properties.Kernal: unknown field; did you mean Kernel?"),
    ({"Cpus": 2}, "Properties.Cpus: unknown field; did you mean CPUs?"),
    ({"Networks": [{"Forwards": [{"GuestPrt": 80}]}]},
     "Properties.Networks[0].Forwards[0].GuestPrt: unknown field; did you mean GuestPort?; "
     "Properties.Networks[0].Forwards[0].GuestPort: required"),
    ({"Memory": "lots"}, "Properties.Memory: expected an integer"),
    ({"Memory": 8}, "Properties.Memory: expected 16 or more, got 8"),
    ({"Networks": [{"Forwards": [{"GuestPort": 80, "Address": "localhost"}]}]},
     "Properties.Networks[0].Forwards[0].Address: expected an IPv4 address such as "
     "127.0.0.1, got 'localhost'"),
    ({"Networks": [{"Forwards": [{"GuestPort": 80, "Protocol": "sctp"}]}]},
     "Properties.Networks[0].Forwards[0].Protocol: expected 'tcp' or 'udp', got 'sctp'"),
    ({"Networks": [{"Type": "network"}]},
     "Properties.Networks[0]: a network of Type network needs Source (a libvirt network)"),
    ({"Networks": [{"Type": "bridge"}]},
     "Properties.Networks[0].Type: expected 'user' or 'network', got 'bridge'"),
    ({"Cmdline": "quiet", "CmdlineFile": "/etc/hostname"},
     "Properties: expected Cmdline or CmdlineFile, not both"),
    ({"StopTimeout": "soon"},
     "Properties.StopTimeout: expected a duration such as 500ms, 10s, 1m or 1h30m, "
     "got 'soon'"),
])
def test_validate_names_the_bad_field(vms: plugin.Plugin, kernel: str, extra: dict[str, Any],
                                      message: str) -> None:
    with pytest.raises(errors.InvalidError) as caught:
        vms.validate({"Kernel": kernel, **extra})
    assert caught.value.message == message


def test_validate_wants_a_kernel_or_an_image(vms: plugin.Plugin) -> None:
    with pytest.raises(errors.InvalidError) as caught:
        vms.validate({"Memory": 128})
    assert caught.value.message == \
        "Properties: expected Kernel (direct kernel boot) or Image (a disk to boot)"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("Kernel", "vmlinuz", "Properties.Kernel: expected an absolute path, got 'vmlinuz'"),
    ("Kernel", "/nonexistent/vmlinuz", "Properties.Kernel: no such file: /nonexistent/vmlinuz"),
    ("Image", "/nonexistent/disk.qcow2",
     "Properties.Image: no such file: /nonexistent/disk.qcow2"),
])
def test_validate_wants_files_that_exist(vms: plugin.Plugin, field: str, value: str,
                                         message: str) -> None:
    with pytest.raises(errors.InvalidError) as caught:
        vms.validate({field: value})
    assert caught.value.message == message
    assert caught.value.data["field"] == f"Properties.{field}"


def test_validate_accepts_the_v05_example(vms: plugin.Plugin, kernel: str) -> None:
    vms.validate({"Kernel": kernel, "Ramdisk": kernel, "CmdlineFile": kernel, "CPUs": 2,
                  "Memory": 1024, "Disk": 512, "DomainType": "kvm",
                  "MetadataStoragePool": "default"})


@pytest.mark.parametrize(("logical_id", "message"), [
    ("", "Spec.LogicalID: '' is empty"),
    ("web 1", "Spec.LogicalID: 'web 1' contains whitespace or control characters"),
    ("x" * 254, f"Spec.LogicalID: {'x' * 254!r} is 254 characters long; at most 253 are "
                "allowed"),
])
def test_provision_refuses_a_bad_logical_id_before_touching_libvirt(
        vms: plugin.Plugin, kernel: str, logical_id: str, message: str) -> None:
    spec = instance.Spec(properties={"Kernel": kernel}, logical_id=logical_id)
    with pytest.raises(errors.InvalidError) as caught:
        vms.provision(spec)
    assert caught.value.message == message


@pytest.mark.parametrize(("attachment", "message"), [
    ({"ID": "/nonexistent.img", "Type": "disk"},
     "Spec.Attachments[0].ID: expected an existing disk image (absolute path), "
     "got '/nonexistent.img'"),
    ({"ID": "just-a-name", "Type": "volume"},
     "Spec.Attachments[0].ID: expected POOL/VOLUME, got 'just-a-name'"),
    ({"ID": "eth1", "Type": "nic"},
     "Spec.Attachments[0].Type: expected disk or volume, got 'nic'"),
])
def test_provision_refuses_an_attachment_it_cannot_attach(
        vms: plugin.Plugin, kernel: str, attachment: dict[str, str], message: str) -> None:
    spec = instance.Spec(properties={"Kernel": kernel},
                         attachments=[instance.Attachment.from_wire(attachment)])
    with pytest.raises(errors.InvalidError) as caught:
        vms.provision(spec)
    assert caught.value.message == message


def _layout(**overrides: Any) -> domain.Layout:
    wanted = props.parse({"Kernel": "/boot/vmlinuz", "Ramdisk": "/srv/initrd.gz",
                          "Cmdline": "console=ttyS0 quiet", "CPUs": 2, "Memory": 96})
    forward = metadata.Forward(protocol="tcp", address="127.0.0.1", host_port=40123,
                               guest_port=80)
    record = metadata.Record(logical_id="web-1", tags={"infrakit.group": "web"},
                             forwards=(forward,), files=("/state/x.seed.iso",),
                             stop_timeout=3.0, created=1.5)
    values: dict[str, Any] = {
        "name": "infrakit-0000abcd", "domain_type": "qemu", "wanted": wanted, "record": record,
        "cmdline": "console=ttyS0 quiet",
        "disks": (domain.Disk(path="/state/x.qcow2", format="qcow2"),
                  domain.Disk(pool="default", volume="data", format=None),
                  domain.Disk(path="/state/x.seed.iso", readonly=True)),
        "nics": (domain.Nic(type="user", forwards=(forward,)),
                 domain.Nic(type="network", source="default")),
        "console_log": "/state/x.console.log", "title": "web-1"}
    values.update(overrides)
    return domain.Layout(**values)


def test_domain_xml_boots_the_kernel_with_disks_in_order_and_forwards_on_loopback() -> None:
    root = ET.fromstring(domain.xml(_layout()))
    assert root.get("type") == "qemu"
    assert root.findtext("name") == "infrakit-0000abcd"
    assert root.findtext("title") == "web-1"
    assert (root.findtext("memory"), root.find("memory").get("unit")) == ("96", "MiB")  # type: ignore[union-attr]
    assert root.findtext("vcpu") == "2"
    assert [root.findtext(f"os/{key}") for key in ("type", "kernel", "initrd", "cmdline")] == \
        ["hvm", "/boot/vmlinuz", "/srv/initrd.gz", "console=ttyS0 quiet"]
    assert root.find("features/acpi") is not None
    assert [root.findtext(event) for event in ("on_poweroff", "on_reboot", "on_crash")] == \
        ["destroy", "restart", "destroy"]
    disks = root.findall("devices/disk")
    assert [disk.find("target").get("dev") for disk in disks] == ["vda", "vdb", "vdc"]  # type: ignore[union-attr]
    assert disks[0].find("source").get("file") == "/state/x.qcow2"  # type: ignore[union-attr]
    assert disks[1].find("source").attrib == {"pool": "default", "volume": "data"}  # type: ignore[union-attr]
    assert "type" not in disks[1].find("driver").attrib  # type: ignore[union-attr]
    assert disks[2].find("readonly") is not None
    assert root.find("devices/interface/source").get("network") == "default"  # type: ignore[union-attr]
    assert root.find("devices/serial/log").get("file") == "/state/x.console.log"  # type: ignore[union-attr]
    qemu = "{" + domain.QEMU_NAMESPACE + "}"
    args = [arg.get("value") for arg in root.iter(f"{qemu}arg")]
    assert args == ["-netdev", "user,id=ik0,hostfwd=tcp:127.0.0.1:40123-:80", "-device",
                    f"virtio-net-pci,netdev=ik0,addr=0x18,mac={domain.mac('infrakit-0000abcd', 0)}"]
    record = root.find(f"metadata/{{{metadata.NAMESPACE}}}infrakit")
    assert record is not None
    assert metadata.parse(ET.tostring(record, encoding="unicode")).logical_id == "web-1"


@pytest.mark.parametrize(("domain_type", "tb_cache", "expected"), [
    ("qemu", 32, "32"), ("qemu", None, None), ("kvm", 32, None)])
def test_the_tcg_cache_is_set_under_tcg_only(domain_type: str, tb_cache: int | None,
                                             expected: str | None) -> None:
    wanted = props.parse({"Kernel": "/boot/vmlinuz", "TBCache": tb_cache})
    root = ET.fromstring(domain.xml(_layout(wanted=wanted, domain_type=domain_type)))
    assert root.findtext("features/tcg/tb-cache") == expected


def test_domain_xml_boots_the_first_disk_without_a_kernel() -> None:
    wanted = props.parse({"Image": "/srv/debian.qcow2"})
    root = ET.fromstring(domain.xml(_layout(wanted=wanted, cmdline="")))
    assert root.find("os/kernel") is None
    assert root.find("os/boot").get("dev") == "hd"  # type: ignore[union-attr]


def test_domain_xml_without_user_networking_has_no_qemu_commandline() -> None:
    root = ET.fromstring(domain.xml(_layout(nics=())))
    assert root.find("{" + domain.QEMU_NAMESPACE + "}commandline") is None
    assert root.find("devices/interface") is None


@pytest.mark.parametrize("prefixed", [True, False])
def test_the_record_reads_back_as_written(prefixed: bool) -> None:
    record = metadata.Record(
        logical_id="10.0.0.5", tags={"infrakit.group": "g", "a": "<&>"},
        forwards=(metadata.Forward("udp", "127.0.0.1", 5353, 53),),
        files=("/a", "/b"), stop_timeout=2.5, created=1700000000.25)
    assert metadata.parse(metadata.element(record, prefixed=prefixed)) == record


def test_a_v05_record_reads_with_its_tags_and_logical_id() -> None:
    text = ('<infrakit xmlns="https://github.com/docker/infrakit"><logicalid>lid</logicalid>'
            '<tag><key>tier</key><value>web</value></tag><metadata-disk><pool>default</pool>'
            '<volume>x-metadata</volume></metadata-disk></infrakit>')
    record = metadata.parse(text)
    assert (record.logical_id, dict(record.tags), record.files) == ("lid", {"tier": "web"}, ())


def test_a_foreign_element_is_not_a_record() -> None:
    with pytest.raises(ValueError, match="expected <infrakit>"):
        metadata.parse('<other xmlns="urn:x"/>')


def test_forwards_show_as_tags() -> None:
    record = metadata.Record(forwards=(metadata.Forward("tcp", "127.0.0.1", 40001, 80),))
    assert metadata.forward_tags(record) == {"libvirt.forward.tcp.80": "127.0.0.1:40001"}


def test_meta_data_quotes_every_value() -> None:
    text = seed.meta_data("infrakit-1", hostname="web-1", extra={"note": "a: b # c"})
    assert text == ('"instance-id": "infrakit-1"\n"local-hostname": "web-1"\n'
                    '"note": "a: b # c"\n')


class _Probe:
    """Stands in for ``socket.socket`` in ``ports``: binds to the next port of ``FREE``."""

    FREE: list[int] = []

    def __init__(self, *_: Any) -> None:
        self.port = 0

    def __enter__(self) -> _Probe:
        return self

    def __exit__(self, *_: Any) -> None:
        return None

    def bind(self, address: tuple[str, int]) -> None:
        self.port = self.FREE.pop(0)

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)


def test_a_picked_port_is_one_the_kernel_calls_free_and_no_guest_holds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports.socket, "socket", _Probe)
    _Probe.FREE = [40001, 40002, 40003]
    assert ports.pick("127.0.0.1", protocol="tcp", taken={40001, 40002}) == 40003


def test_a_picked_port_can_be_bound() -> None:
    port = ports.pick("127.0.0.1", protocol="tcp", taken=set())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))
