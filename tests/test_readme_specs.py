"""The application group specs the README offers to copy are valid: the group plugin accepts
them and each flavor validates its Properties against the allocation."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import pytest
import yaml

from infrakit.group import config
from infrakit.plugins.flavor.etcd import plugin as etcd
from infrakit.plugins.flavor.mariadb import plugin as mariadb
from infrakit.plugins.flavor.zookeeper import plugin as zookeeper
from infrakit.spi import flavor, group

ROOT = pathlib.Path(__file__).parents[1]


def readme_spec(name: str) -> dict[str, Any]:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"```yaml\n# {re.escape(name)}:.*?\n(.*?)```", text, flags=re.DOTALL)
    assert match, f"README has no {name} block"
    found: dict[str, Any] = yaml.safe_load(match.group(1))
    return found


@pytest.mark.parametrize(("name", "plugin_name"), [
    ("zk.yml", "flavor-zookeeper"), ("etcd.yml", "flavor-etcd"), ("db.yml", "flavor-mariadb")])
async def test_the_readme_application_specs_are_valid(name: str, plugin_name: str,
                                                      tmp_path: pathlib.Path) -> None:
    spec = group.Spec.model_validate(readme_spec(name))
    _, props = config.parse_spec(spec)
    assert props.flavor.plugin == plugin_name
    assert props.logical_ids is not None and len(props.logical_ids) == 3
    flavors = {"flavor-zookeeper": lambda: zookeeper.Plugin(tmp_path),
               "flavor-etcd": etcd.Plugin, "flavor-mariadb": mariadb.Plugin}
    checker = flavors[plugin_name]()
    await checker.validate(props.flavor.properties,
                           flavor.AllocationMethod(logical_ids=props.logical_ids))
