"""instance-libvirt: virtual machines through libvirt, as InfraKit v0.5's libvirt plugin did.

Modules: :mod:`.properties` (what a VM is made of), :mod:`.domain` (its libvirt XML),
:mod:`.metadata` (the record a domain carries: tags, logical ID, forwards, files),
:mod:`.seed` (Init on a NoCloud ISO), :mod:`.disks` (qemu-img overlays), :mod:`.ports` (host
ports for forwards), :mod:`.connection` (the libvirt bindings, reconnecting, events, errors),
:mod:`.plugin` (the Instance interface) and :mod:`.serve` (``infrakit-instance-libvirt``).
Needs the ``libvirt`` extra: ``pip install 'infrakit[libvirt]'``.
"""
