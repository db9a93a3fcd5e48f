"""Drop-in commands with the original binaries' names and main flags (console scripts).

``infrakit-instance-file --dir D --name N [--log N]``, ``infrakit-flavor-vanilla --name N``,
``infrakit-flavor-combo --name N``: each runs the plugin module's ``run(argv)``. The lead adds
``infrakit-group-default`` and ``infrakit-manager`` here the same way.
"""

from __future__ import annotations

import sys


def _args() -> list[str]:
    return sys.argv[1:]


def instance_file() -> None:
    from infrakit.plugins.instance import file

    file.run(_args())


def flavor_vanilla() -> None:
    from infrakit.plugins.flavor import vanilla

    vanilla.run(_args())


def flavor_combo() -> None:
    from infrakit.plugins.flavor import combo

    combo.run(_args())
