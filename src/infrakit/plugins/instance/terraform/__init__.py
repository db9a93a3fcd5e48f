"""``instance-terraform``: each instance is a Terraform JSON file in a work directory.

:mod:`.serve` is the process (``infrakit-instance-terraform``), :mod:`.plugin` the Instance
methods, :mod:`.document` the properties and the per-instance files, :mod:`.workdir` the
directory, :mod:`.state` Terraform's state as ``show -json`` gives it, :mod:`.batch` the
batching of applies, :mod:`.apply` one batch carried out, :mod:`.engine` how Terraform runs.
"""
