"""``python -m infrakit.cli.entry NAME ARGS...``: run the plugin installed as entry point NAME.

``infrakit plugin start NAME`` launches third-party plugins this way when the launch config
does not name them: each ``infrakit.plugins`` entry point is a ``run(argv)`` callable.
"""

from __future__ import annotations

import sys

from infrakit.rpc import launch


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m infrakit.cli.entry NAME [ARGS...]", file=sys.stderr)
        raise SystemExit(2)
    name, rest = args[0], args[1:]
    found = launch.entry_points().get(name)
    if found is None:
        print(f"infrakit: no {launch.ENTRY_POINT_GROUP!r} entry point named {name!r}",
              file=sys.stderr)
        raise SystemExit(3)
    found.load()(rest)


if __name__ == "__main__":
    main()
