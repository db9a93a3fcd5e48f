"""A group of QEMU guests end to end: the real group plugin and flavor-vanilla (as their own
processes) keep three VMs of instance-libvirt running, each probed over HTTP through its host
forward; a killed VM is replaced, a rolling update replaces all three, DestroyGroup leaves
nothing. A second group plugin that polls once in ten minutes shows that a killed guest wakes
it (``--notify``): libvirt's lifecycle event, not the poll, starts the healing.
"""

from __future__ import annotations

import libvirt_session
import pytest
from libvirt_guest import Guest
from libvirt_stack import running, serving, vms, wait_for

pytestmark = [pytest.mark.libvirt, pytest.mark.slow, pytest.mark.timeout(600)]


def test_a_group_of_vms_converges_heals_rolls_and_goes(
        session: libvirt_session.Session, guest: Guest) -> None:
    with running(session, "rolling", poll="1s") as stack:
        stack.commit(vms("vms", guest, size=3, version="v1"))
        first = wait_for(serving(stack, "vms", 3, "v1"), what="3 guests serving v1")
        assert set(first) <= set(session.running())
        assert all(member["Tags"]["tier"] == "vm" for member in first.values())

        victim = sorted(first)[0]
        session.kill(victim)
        healed = wait_for(serving(stack, "vms", 3, "v1", without={victim}),
                          what="the killed guest replaced")
        assert set(first) - {victim} < set(healed)
        assert victim not in session.defined()

        stack.commit(vms("vms", guest, size=3, version="v2"))
        rolled = wait_for(serving(stack, "vms", 3, "v2", without=set(healed)),
                          what="all three replaced by v2 guests")
        assert set(session.running()) >= set(rolled)

        stack.call("Group.DestroyGroup", {"ID": "vms"})
        assert not set(rolled) & set(session.defined())
        state = session.root / "work" / "instance-libvirt-state"
        assert not [path for path in state.iterdir() if path.name.startswith("infrakit-")]


def test_a_killed_guest_wakes_the_group_long_before_its_poll(
        session: libvirt_session.Session, guest: Guest) -> None:
    with running(session, "woken", poll="10m") as stack:
        stack.commit(vms("woken", guest, size=1, version="w1"))
        [first] = wait_for(serving(stack, "woken", 1, "w1"), what="the guest serving")
        session.kill(first)
        # The group's next poll is ten minutes away: only the lifecycle event wakes it.
        wait_for(serving(stack, "woken", 1, "w1", without={first}),
                 what="the killed guest replaced", timeout=120)
        stack.call("Group.DestroyGroup", {"ID": "woken"})
