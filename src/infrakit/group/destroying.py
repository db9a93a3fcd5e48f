"""Removing members: one (drain, then destroy), those DestroyInstances names, or every one
for DestroyGroup.

A failure is recorded as an action and the member stays, to be retried; nothing that
does not carry the group's tag is touched (:mod:`.actions` refuses). The supervisor holds
one :class:`Destroyer`: its reconciles remove members through :meth:`Destroyer.one`, and
DestroyInstances and DestroyGroup call :meth:`Destroyer.chosen` and :meth:`Destroyer.every`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from infrakit import errors
from infrakit.group import actions, clock, inflight, jobs, tags
from infrakit.group import status as status_
from infrakit.group.target import Target
from infrakit.spi import instance


@dataclass(frozen=True, slots=True)
class Destroyer:
    """Drains and destroys the members of one group."""

    plugins: actions.Plugins
    clock: clock.Clock
    recorder: status_.Recorder
    ledger: inflight.Ledger
    workers: int
    on_error: jobs.OnError

    async def one(self, target: Target, member: instance.Description, *,
                  plugins: actions.Plugins) -> bool:
        """Drain, then destroy; False (recorded; the member stays, to be retried) on a failure."""
        try:
            await actions.drain(plugins, target.gid, target.props, member, source=self.clock)
        except Exception as err:
            why = str(err) or type(err).__name__
            self.recorder.add("drain-failed", f"drain of {member.id} failed ({why}); not "
                              "destroyed, will retry", instance=member.id)
            return False
        try:
            await actions.destroy(plugins, target.gid, target.props, member)
        except Exception as err:
            self.recorder.add("destroy-failed", f"destroy of {member.id} failed ({err}); "
                              "will retry", instance=member.id)
            return False
        self.ledger.destroyed(member.id, self.clock.monotonic())
        return True

    async def chosen(self, target: Callable[[], Target], ids: Sequence[str], *,
                     on_destroyed: Callable[[instance.Description], None]) -> None:
        """DestroyInstances: drain and destroy these members (protected ones too).

        ``target`` gives the group as it is at each step (``on_destroyed`` may shrink it).
        ``NotFoundError`` (nothing destroyed) when one is not a member; ``TemporaryError``
        naming those that could not be destroyed.
        """
        first = target()
        listed = await actions.list_members(self.plugins, first.gid, first.props)
        by_id: dict[str, instance.Description] = {m.id: m for m in listed}
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            raise errors.NotFoundError(f"not members of group '{first.gid}': "
                                       f"{', '.join(unknown)}", group=first.gid)
        chosen = [by_id[i] for i in dict.fromkeys(ids)]
        self.ledger.doom(m.id for m in chosen)
        failed: list[str] = []
        plugins = actions.memoized(self.plugins)

        async def destroy(member: instance.Description) -> None:
            try:
                if not await self.one(target(), member, plugins=plugins):
                    failed.append(member.id)
                    return
                on_destroyed(member)
                self.recorder.add("destroyed", f"destroyed {member.id} because "
                                  "DestroyInstances asked", instance=member.id)
            except Exception:
                failed.append(member.id)
                raise  # recorded by on_error
            finally:
                self.ledger.spare(member.id)

        await jobs.bounded([functools.partial(destroy, m) for m in chosen],
                           workers=self.workers, on_error=self.on_error)
        if failed:
            raise errors.TemporaryError(f"could not destroy {', '.join(failed)} of group "
                                        f"'{first.gid}' (see its status)", group=first.gid)

    async def every(self, target: Target) -> None:
        """DestroyGroup (once the group is no longer supervised): drain and destroy every
        member; ``TemporaryError`` naming those that could not be (protected ones too)."""
        protect = target.props.scale.protect_tag
        listed = await actions.list_members(self.plugins, target.gid, target.props)
        failed: list[str] = []
        plugins = actions.memoized(self.plugins)

        async def destroy(member: instance.Description) -> None:
            try:
                done = not tags.protected(member, protect) and await self.one(
                    target, member, plugins=plugins)
            except Exception:
                failed.append(member.id)
                raise  # recorded by on_error
            if not done:
                failed.append(member.id)
            else:
                self.recorder.add("destroyed", f"destroyed {member.id} because DestroyGroup "
                                  "asked", instance=member.id)

        await jobs.bounded([functools.partial(destroy, m) for m in listed],
                           workers=self.workers, on_error=self.on_error)
        if failed:
            raise errors.TemporaryError(
                f"DestroyGroup '{target.gid}': could not destroy {', '.join(sorted(failed))} "
                "(see its status); call DestroyGroup again to retry", group=target.gid)


async def shielded(plugins: actions.Plugins, target: Target) -> list[str]:
    """The protected members of the group (DestroyGroup refuses while there are any)."""
    protect = target.props.scale.protect_tag
    listed = await actions.list_members(plugins, target.gid, target.props)
    return sorted(m.id for m in listed if tags.protected(m, protect))
