"""instance-vagrant's Properties, Vagrantfile templates and flags: pure logic, no vagrant."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys
from typing import Any

import pytest

from infrakit import errors
from infrakit.plugins.instance.vagrant import properties, serve, template

BIN = pathlib.Path(sys.executable).parent


@pytest.mark.parametrize(("raw", "expected"), [
    ({"Boxx": "x"}, "Properties.Boxx: unknown field; did you mean Box?"),
    ({"Box": "x", "CPUs": 0}, "Properties.CPUs"),
    ({"Box": "x", "Memory": "lots"}, "Properties.Memory"),
    ({"Image": "busybox", "Cmd": "sleep 1"}, "Properties.Cmd"),
    ({"Image": "busybox", "Provider": "Docker!"}, "Properties.Provider"),
    ({}, "Property 'Box' must be set"),
    ({"CPUs": 1}, "Properties.Box"),
    ({"Provider": "docker"}, "Properties.Image: required by the docker provider"),
    ({"Image": "busybox", "Box": "debian"}, "Properties.Box: not used by the docker provider"),
    ({"Box": "debian", "Cmd": ["sleep", "1"]}, "Properties.Cmd: only for the docker provider"),
    ([1, 2], "Properties"),
])
def test_bad_properties_are_refused_naming_the_field(raw: Any, expected: str) -> None:
    with pytest.raises(errors.InvalidError) as caught:
        properties.check_builtin(properties.parse(raw))
    assert expected in caught.value.message


@pytest.mark.parametrize(("raw", "provider"), [
    ({"Box": "debian"}, "virtualbox"),
    ({"Box": "debian", "Provider": "libvirt"}, "libvirt"),
    ({"Image": "busybox"}, "docker"),
    ({"Image": "busybox", "Provider": "docker", "Cmd": ["sleep", "1"], "Env": {"A": "b"}},
     "docker"),
])
def test_the_provider_follows_from_the_properties(raw: dict[str, Any], provider: str) -> None:
    assert properties.check_builtin(properties.parse(raw)).chosen_provider() == provider


def test_a_users_template_may_read_keys_of_its_own_but_types_are_still_checked() -> None:
    parsed = properties.parse({"Box": "b", "Flavour": "x"}, strict=False)
    assert parsed.to_wire()["Flavour"] == "x"
    with pytest.raises(errors.InvalidError, match=r"Properties\.CPUs"):
        properties.parse({"CPUs": "two", "Flavour": "x"}, strict=False)


@pytest.mark.parametrize(("value", "literal"), [
    ("plain", '"plain"'),
    ('say "#{`id`}"\n', r'"say \"\#{`id`}\"\n"'),
    (None, "nil"), (True, "true"), (3, "3"),
    (["a", 1], '["a", 1]'),
    ({"K": "v#"}, r'{"K" => "v\#"}'),
])
def test_values_reach_the_vagrantfile_as_ruby_literals(value: Any, literal: str) -> None:
    assert template.ruby(value) == literal


def test_v05_go_field_references_read_as_jinja() -> None:
    assert template.from_go('box = "{{.Properties.Box}}"{{ .NetworkOptions }}{{- .A -}}') \
        == 'box = "{{ Properties.Box }}"{{ NetworkOptions }}{{- A -}}'


def context(raw: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    wanted = properties.check_builtin(properties.parse(raw))
    given: dict[str, Any] = {"iid": "infrakit-1", "logical_id": None, "tags": {},
                             "init": "", "plugin": "instance-vagrant", **kwargs}
    return template.context(wanted, **given)


def test_the_builtin_template_runs_init_then_cmd_in_a_container_that_shares_nothing() -> None:
    text = template.builtin().render(context(
        {"Image": "busybox", "Cmd": ["sleep", "9"], "Env": {"MODE": "x"}},
        logical_id="web-1", tags={"tier": "web"}, init="echo hi"))
    assert 'config.vm.synced_folder ".", "/vagrant", disabled: true' in text
    assert 'config.vm.hostname = "web-1"' in text
    assert 'd.image = "busybox"' in text and "d.has_ssh = false" in text
    assert 'd.cmd = ["/bin/sh", "-c", "echo hi\\nexec \\"$@\\"", "infrakit-init", "sleep", ' \
           '"9"]' in text
    assert '"MODE" => "x"' in text and '"INFRAKIT_TAG_TIER" => "web"' in text
    assert '"INFRAKIT_LOGICAL_ID" => "web-1"' in text
    assert '"--pull=never"' in text
    assert '"infrakit.instance-vagrant=instance-vagrant"' in text
    assert "config.vm.box" not in text


def test_the_builtin_template_makes_a_v05_vm_for_a_box() -> None:
    text = template.builtin().render(context({"Box": "debian/bookworm64", "Memory": 1024},
                                             logical_id="10.0.0.7"))
    assert 'config.vm.box = "debian/bookworm64"' in text
    assert 'config.vm.network "private_network", ip: "10.0.0.7"' in text
    assert 'config.vm.provision :shell, path: "boot.sh"' in text
    assert 'config.vm.provider "virtualbox" do |vm|' in text
    assert "vm.memory = 1024" in text and "vm.cpus = 2" in text
    dhcp = template.builtin().render(context({"Box": "b"}))
    assert 'config.vm.network "private_network", type: "dhcp"' in dhcp


def test_a_v05_template_file_is_read_and_a_missing_key_is_named(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "Vagrantfile.tpl"
    path.write_text('config.vm.box = "{{.Properties.Box}}"  # {{.Properties.Owner}}\n')
    loaded = template.load(str(path))
    assert not loaded.builtin
    wanted = properties.parse({"Box": "b", "Owner": "ops"}, strict=False)
    text = loaded.render(template.context(wanted, iid="infrakit-1", logical_id=None, tags={},
                                          init="", plugin="p"))
    assert text == 'config.vm.box = "b"  # ops\n'
    with pytest.raises(errors.InvalidError, match="Owner"):
        loaded.render(template.context(properties.parse({"Box": "b"}, strict=False),
                                       iid="infrakit-1", logical_id=None, tags={}, init="",
                                       plugin="p"))


@pytest.mark.parametrize(("text", "expected"), [
    (None, "cannot read"),
    ("{% if %}", "template syntax error"),
])
def test_an_unusable_template_stops_the_start(tmp_path: pathlib.Path, text: str | None,
                                              expected: str) -> None:
    path = tmp_path / "t"
    if text is not None:
        path.write_text(text)
    with pytest.raises(errors.UsageError, match=f"--template: .*{expected}"):
        template.load(str(path))


@pytest.mark.parametrize(("argv", "expected"), [
    (["--max-parallel", "0"], "--max-parallel: expected at least 1"),
    (["--up-timeout", "soon"], "--up-timeout: expected a duration"),
    (["--vagrant", "/nonexistent/vagrant"],
     "/nonexistent/vagrant not found: install Vagrant (Debian and Ubuntu: apt-get install "
     "vagrant)"),
])
def test_bad_flags_are_refused(argv: list[str], expected: str) -> None:
    with pytest.raises(errors.InfrakitError, match=re.escape(expected)):
        serve.parse(argv)


def test_a_missing_vagrant_is_one_line_saying_what_to_install(tmp_path: pathlib.Path) -> None:
    done = subprocess.run([str(BIN / "infrakit-instance-vagrant"), "--dir", str(tmp_path)],
                          env={"PATH": str(tmp_path), "HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert done.stderr == ("infrakit-instance-vagrant: vagrant not found: install Vagrant "
                           "(Debian and Ubuntu: apt-get install vagrant)\n")
