"""instance-libvirt against a real session libvirtd: QEMU guests (TCG) booted, reached, removed.

Every test drives the plugin process over its socket, as the group plugin does, and looks at
libvirt and the guests itself: through the session's own connection, and over HTTP through
the host forward on 127.0.0.1 that the plugin set up (the guest serves its Init, see
``libvirt_guest``).
"""

from __future__ import annotations

import json
import pathlib
import secrets
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

import libvirt_session
import pytest
from libvirt_guest import Guest

from infrakit import errors, testing
from infrakit.rpc import sync

pytestmark = [pytest.mark.libvirt, pytest.mark.slow]

T = TypeVar("T")
FORWARD = "libvirt.forward.tcp.80"


def wait_for(check: Callable[[], T | None], *, what: str, timeout: float = 90.0) -> T:
    return testing.wait_for(check, what=what, timeout=timeout, pause=0.2)


def fetch(target: str, path: str = "/") -> str | None:
    """The guest's page at ``path`` through the forward ``target``; None while it cannot."""
    try:
        with urllib.request.urlopen(f"http://{target}{path}", timeout=3) as answer:
            return str(answer.read().decode())
    except (urllib.error.URLError, OSError):
        return None


def provision(plugin: sync.Client, properties: dict[str, Any], *, init: str = "",
              tags: dict[str, str] | None = None, **spec: Any) -> str:
    answer = plugin.call("Instance.Provision", {"Spec": {
        "Properties": properties, "Tags": tags or {}, "Init": init, **spec}})
    return str(answer["ID"])


def describe(plugin: sync.Client, tags: dict[str, str], *, details: bool = False
             ) -> list[dict[str, Any]]:
    answer = plugin.call("Instance.DescribeInstances", {"Tags": tags, "Properties": details})
    return list(answer["Descriptions"] or [])


def state_dir(session: libvirt_session.Session) -> pathlib.Path:
    return session.root / "work" / "instance-libvirt-state"


def test_a_guest_gets_its_init_and_answers_through_its_host_forward(
        session: libvirt_session.Session, guest: Guest, plugin: sync.Client) -> None:
    marker = f"marker-{secrets.token_hex(4)}"
    iid = provision(plugin, guest.properties(StopTimeout="20s"),
                    init=f"echo {marker} > /www/marker.txt", tags={"test": "init"},
                    LogicalID="web-1")
    try:
        assert iid in session.running()
        [found] = describe(plugin, {"test": "init"}, details=True)
        assert found["ID"] == iid and found["LogicalID"] == "web-1"
        address, _, port = found["Tags"][FORWARD].partition(":")
        assert address == "127.0.0.1" and port.isdigit()
        # The seed carries the Init (user-data) and the guest runs it.
        assert wait_for(lambda: fetch(found["Tags"][FORWARD], "/marker.txt"),
                        what="the guest's HTTP server") == f"{marker}\n"
        page = fetch(found["Tags"][FORWARD]) or ""
        assert f"echo {marker} > /www/marker.txt" in page
        assert f'"instance-id": "{iid}"' in page and '"local-hostname": "web-1"' in page
        assert describe(plugin, {"test": "other"}) == []
    finally:
        plugin.call("Instance.Destroy", {"Instance": iid})
    assert iid not in session.defined()
    assert not list(state_dir(session).glob(f"{iid}*")), "the instance's files are removed"


def test_label_merges_tags_into_the_domain_metadata(
        session: libvirt_session.Session, guest: Guest, plugin: sync.Client) -> None:
    iid = provision(plugin, guest.properties(StopTimeout="0s"), tags={"test": "label", "a": "1"})
    try:
        plugin.call("Instance.Label", {"Instance": iid, "Labels": {"b": "2", "a": "3"}})
        [found] = describe(plugin, {"test": "label"})
        assert {key: found["Tags"][key] for key in ("a", "b", "test")} == \
            {"a": "3", "b": "2", "test": "label"}
        # Kept by the domain itself: what libvirt holds, as another plugin would read it.
        text = session.conn.lookupByName(iid).metadata(
            2, "https://github.com/docker/infrakit", 0)
        assert "<key>b</key>" in text and "<value>3</value>" in text
        with pytest.raises(errors.NotFoundError):
            plugin.call("Instance.Label", {"Instance": "infrakit-00000000", "Labels": {}})
    finally:
        plugin.call("Instance.Destroy", {"Instance": iid})


def test_destroy_pulls_the_plug_on_a_guest_that_ignores_the_power_button(
        session: libvirt_session.Session, guest: Guest, plugin: sync.Client) -> None:
    # The Init stops acpid: the power button does nothing, only the timeout ends the guest.
    iid = provision(plugin, guest.properties(StopTimeout="1s"), tags={"test": "stubborn"},
                    init="kill $(pidof acpid); echo deaf > /www/deaf.txt")
    [found] = describe(plugin, {"test": "stubborn"})
    wait_for(lambda: fetch(found["Tags"][FORWARD], "/deaf.txt"), what="the guest's Init")
    plugin.call("Instance.Destroy", {"Instance": iid})
    assert iid not in session.defined()
    assert f"destroyed {iid}: no power-off within StopTimeout, plug pulled" in \
        session.plugin_log()


def test_destroy_lets_a_guest_power_off_when_it_obeys(
        session: libvirt_session.Session, guest: Guest, plugin: sync.Client) -> None:
    iid = provision(plugin, guest.properties(StopTimeout="60s"), tags={"test": "obeys"})
    [found] = describe(plugin, {"test": "obeys"})
    wait_for(lambda: fetch(found["Tags"][FORWARD]), what="the guest to be up")
    plugin.call("Instance.Destroy", {"Instance": iid})
    assert iid not in session.defined()
    log = session.plugin_log()
    assert f"destroyed {iid}\n" in log and f"destroyed {iid}: no power-off" not in log


def test_an_image_boots_on_its_own_overlay_and_attachments_outlive_the_instance(
        session: libvirt_session.Session, guest: Guest, plugin: sync.Client) -> None:
    files = session.directory("images")
    base, data = files / "base.qcow2", files / "data.raw"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "64M"], check=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(data), "8M"], check=True)
    session.directory("images")  # hand the new files to the session's user
    before = base.read_bytes()
    iid = provision(plugin, guest.properties(Image=str(base), Disk=128, StopTimeout="0s"),
                    tags={"test": "image"}, Attachments=[{"ID": str(data), "Type": "disk"}])
    try:
        overlay = state_dir(session) / f"{iid}.qcow2"
        info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json",
                                          str(overlay)], check=True, capture_output=True,
                                         text=True).stdout)
        assert info["format"] == "qcow2" and info["backing-filename"] == str(base)
        assert info["virtual-size"] == 128 * 1024 * 1024
        [found] = describe(plugin, {"test": "image"})
        page = wait_for(lambda: fetch(found["Tags"][FORWARD]), what="the guest's page")
        # /proc/partitions in KiB blocks: the overlay (128 MiB), the attachment (8 MiB).
        assert " 131072 vda" in page and " 8192 vdb" in page
    finally:
        plugin.call("Instance.Destroy", {"Instance": iid})
    assert not overlay.exists()
    assert base.read_bytes() == before and data.exists()


def test_a_killed_guest_is_no_instance_and_leaves_nothing_behind(
        session: libvirt_session.Session, guest: Guest, plugin: sync.Client) -> None:
    iid = provision(plugin, guest.properties(), tags={"test": "killed"}, init="echo x")
    assert list(state_dir(session).glob(f"{iid}*"))
    session.kill(iid)
    wait_for(lambda: iid not in session.running(), what="QEMU to die")
    assert describe(plugin, {"test": "killed"}) == []
    assert iid not in session.defined(), "the dead domain is undefined"
    assert not list(state_dir(session).glob(f"{iid}*")), "and its files removed"
    with pytest.raises(errors.NotFoundError):
        plugin.call("Instance.Destroy", {"Instance": iid})


def test_a_guest_that_cannot_start_leaves_nothing_behind(
        session: libvirt_session.Session, guest: Guest, plugin: sync.Client) -> None:
    # A host port already taken: QEMU cannot set up the forward and exits.
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        properties = guest.properties(
            Networks=[{"Forwards": [{"GuestPort": 80, "HostPort": port}]}])
        domains, files = session.defined(), sorted(state_dir(session).iterdir())
        with pytest.raises(errors.PermanentError) as caught:
            provision(plugin, properties, init="echo x", tags={"test": "port"})
    assert "start infrakit-" in caught.value.message
    assert session.defined() == domains
    assert sorted(state_dir(session).iterdir()) == files


def test_a_domain_without_our_record_is_never_destroyed(
        session: libvirt_session.Session, plugin: sync.Client) -> None:
    stranger = "infrakit-0badf00d"
    session.conn.defineXML(
        f"<domain type='qemu'><name>{stranger}</name><memory unit='MiB'>32</memory>"
        "<os><type>hvm</type></os></domain>")
    try:
        with pytest.raises(errors.PermanentError, match="not an instance of instance-libvirt"):
            plugin.call("Instance.Destroy", {"Instance": stranger})
        assert stranger in session.defined()
        assert all(found["ID"] != stranger for found in describe(plugin, {}))
    finally:
        session.conn.lookupByName(stranger).undefine()


def test_the_plugin_reconnects_when_libvirtd_restarts(
        session: libvirt_session.Session, guest: Guest, plugin: sync.Client) -> None:
    iid = provision(plugin, guest.properties(StopTimeout="0s"), tags={"test": "restart"})
    try:
        session.restart()
        assert iid in session.running(), "the guest outlives its daemon's restart"

        def listed() -> list[str] | None:
            try:
                return [found["ID"] for found in describe(plugin, {"test": "restart"})]
            except errors.Unavailable:
                return None  # the call that finds the old connection dead
        assert wait_for(listed, what="Describe through a new connection") == [iid]
    finally:
        plugin.call("Instance.Destroy", {"Instance": iid})
    assert iid not in session.defined()


def test_bad_properties_over_rpc_name_the_field_and_the_plugin_lives_on(
        guest: Guest, plugin: sync.Client) -> None:
    with pytest.raises(errors.InvalidError) as caught:
        plugin.call("Instance.Validate", {"Properties": {**guest.properties(), "Memroy": 64}})
    assert caught.value.message == "Properties.Memroy: unknown field; did you mean Memory?"
    with pytest.raises(errors.InvalidError, match=r"Properties\.Kernel: no such file"):
        provision(plugin, {**guest.properties(), "Kernel": "/nonexistent"})
    plugin.call("Instance.Validate", {"Properties": guest.properties()})
