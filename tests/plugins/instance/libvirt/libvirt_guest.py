"""The test guest: a Debian kernel and a busybox initramfs built here, booted under QEMU.

``build(dest)`` writes ``initrd.gz`` (newc cpio, gzip) holding the static busybox, the kernel
modules the guest needs (virtio PCI, net and block, isofs for the NoCloud seed, the ACPI
button) and an ``/init`` that:

- mounts proc, sys and devtmpfs, loads the modules, brings ``eth0`` up with ``udhcpc``
  (user-mode networking answers with 10.0.2.15);
- finds the NoCloud seed (an ISO 9660 disk), copies its ``user-data`` (the instance's Init)
  and ``meta-data`` into ``/www/index.html`` with ``/proc/partitions``;
- starts ``acpid``, which powers the guest off on the ACPI power button, so that a graceful
  shutdown really is one (an Init can ``kill $(pidof acpid)`` to make a guest that ignores
  it);
- runs the user-data as a shell script (its output in ``/www/user-data.log``), then serves
  ``/www`` with ``httpd`` on port 80.

The kernel is the newest ``/boot/vmlinuz-*`` with its modules in ``/lib/modules``; both come
from Debian's ``linux-image-amd64``, busybox from ``busybox-static`` (scripts/deps-libvirt.sh).
"""

from __future__ import annotations

import dataclasses
import gzip
import pathlib
import shutil
import subprocess
import tempfile

BUSYBOX = pathlib.Path("/bin/busybox")
MODULES = ("virtio_pci", "virtio_net", "virtio_blk", "isofs", "button", "evdev")
"""What the guest loads (with their dependencies, in order)."""

APPLETS = ("sh", "cp", "chmod", "mount", "insmod", "ip", "udhcpc", "httpd", "acpid",
           "poweroff", "cat", "mkdir", "echo", "sleep", "ls", "pidof", "hostname")

INIT = r"""#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
while read -r module; do insmod "/lib/modules/$module"; done < /modules.order
echo "guest: modules loaded"
ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -s /bin/udhcpc.script -q -n -t 20 -T 1 >/dev/null 2>&1
echo "guest: eth0 configured"
mkdir -p /seed /www /etc/acpi/PWRF /etc/acpi/PWRB
for dev in /dev/vd? /dev/sr?; do
    [ -b "$dev" ] && mount -t iso9660 -o ro "$dev" /seed 2>/dev/null && break
done
{
    echo "<pre>"
    echo "== user-data"; cat /seed/user-data 2>/dev/null
    echo "== meta-data"; cat /seed/meta-data 2>/dev/null
    echo "== partitions"; cat /proc/partitions
    echo "</pre>"
} > /www/index.html
printf '#!/bin/sh\npoweroff -f\n' > /etc/acpi/PWRF/00000080
cp /etc/acpi/PWRF/00000080 /etc/acpi/PWRB/00000080
chmod +x /etc/acpi/PWRF/00000080 /etc/acpi/PWRB/00000080
acpid -c /etc/acpi -l /dev/console
[ -f /seed/user-data ] && sh /seed/user-data > /www/user-data.log 2>&1
httpd -p 80 -h /www
echo "guest: serving"
while true; do sleep 3600; done
"""

UDHCPC_SCRIPT = r"""#!/bin/sh
case "$1" in
    bound|renew)
        ip addr add "$ip/${mask:-24}" dev "$interface"
        for gateway in $router; do ip route add default via "$gateway"; break; done
        ;;
esac
"""


@dataclasses.dataclass(frozen=True)
class Guest:
    """What the test guest boots: the kernel and our initramfs."""

    kernel: pathlib.Path
    initrd: pathlib.Path

    def properties(self, **extra: object) -> dict[str, object]:
        """Instance Properties booting this guest: 96 MiB, a 32 MiB TCG cache, a quiet
        console (a chatty one costs seconds under TCG), port 80 forwarded to a host port the
        plugin picks."""
        return {"Kernel": str(self.kernel), "Ramdisk": str(self.initrd),
                "Cmdline": "console=ttyS0 quiet", "Memory": 96, "TBCache": 32,
                "Networks": [{"Type": "user", "Forwards": [{"GuestPort": 80}]}], **extra}


def kernel() -> pathlib.Path:
    """The newest Debian kernel in /boot."""
    found = sorted(pathlib.Path("/boot").glob("vmlinuz-*"))
    if not found:
        raise FileNotFoundError("no /boot/vmlinuz-*: install linux-image-amd64")
    return found[-1]


def missing() -> list[str]:
    """What the guest cannot be built or booted without (empty when all is there)."""
    needed = {"busybox-static": BUSYBOX.exists(), "cpio": shutil.which("cpio") is not None,
              "linux-image-amd64": bool(list(pathlib.Path("/boot").glob("vmlinuz-*")))}
    return [package for package, present in needed.items() if not present]


def build(dest: pathlib.Path) -> pathlib.Path:
    """Write the initramfs to ``dest/initrd.gz``; return its path."""
    version = kernel().name.removeprefix("vmlinuz-")
    with tempfile.TemporaryDirectory(prefix="ik-guest-") as staging:
        root = pathlib.Path(staging)
        _lay_out(root, version=version)
        archive = subprocess.run(
            "find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet", shell=True, cwd=root,
            check=True, capture_output=True).stdout
    target = dest / "initrd.gz"
    target.write_bytes(gzip.compress(archive, compresslevel=1))
    target.chmod(0o644)
    return target


def _lay_out(root: pathlib.Path, *, version: str) -> None:
    for name in ("bin", "proc", "sys", "dev", "lib/modules", "tmp"):
        (root / name).mkdir(parents=True, exist_ok=True)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    _script(root / "init", INIT)
    _script(root / "bin" / "udhcpc.script", UDHCPC_SCRIPT)
    order = _with_dependencies(pathlib.Path("/lib/modules") / version, MODULES)
    for module in order:
        shutil.copy(pathlib.Path("/lib/modules") / version / module,
                    root / "lib" / "modules" / pathlib.Path(module).name)
    (root / "modules.order").write_text(
        "".join(pathlib.Path(module).name + "\n" for module in order))


def _script(path: pathlib.Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def _with_dependencies(modules_dir: pathlib.Path, wanted: tuple[str, ...]) -> list[str]:
    """The modules ``wanted`` and what they need, each after its dependencies (modules.dep
    paths)."""
    depends: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        module, _, rest = line.partition(":")
        depends[module] = rest.split()
        by_name[pathlib.Path(module).name.removesuffix(".ko")] = module
    order: list[str] = []

    def visit(module: str) -> None:
        if module in order:
            return
        for dependency in depends.get(module, []):
            visit(dependency)
        order.append(module)

    for name in wanted:
        visit(by_name[name])
    return order
