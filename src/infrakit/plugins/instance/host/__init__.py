"""The ``instance-host`` plugin: each instance is a host of its own on one machine.

A host is a network namespace with its own address on a private network, a hostname (a UTS
namespace), its own process tree (a PID namespace whose PID 1 is :mod:`.init`), and its Init
run as the host's boot script. The private network is a bridge that lives inside a namespace
of the plugin's (the *switch*), never in the root namespace. Killing the host's PID 1 takes
every process of the host with it: that is what "a host goes down" means.

Modules: :mod:`.network` (namespaces, the switch, veths, addresses), :mod:`.init` (PID 1
inside a host), :mod:`.plugin` (the instance plugin), :mod:`.serve` (the command).
"""
