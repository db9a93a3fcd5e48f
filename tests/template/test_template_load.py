"""Loading configs: fetch, render, then parse as JSON or YAML, with errors naming file and line."""

from __future__ import annotations

import pathlib

import pytest

from infrakit import errors, template

GROUP = {"ID": "workers", "Properties": {"Allocation": {"Size": 3}}}


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("group.json", '{"ID": "{{ gid }}", "Properties": {"Allocation": {"Size": {{ size }}}}}'),
        ("group.yaml", "ID: {{ gid }}\nProperties:\n  Allocation:\n    Size: {{ size }}\n"),
        ("group.yml", "ID: {{ gid }}\nProperties: {Allocation: {Size: {{ size }}}}\n"),
        ("group.conf", '{"ID": "{{ gid }}", "Properties": {"Allocation": {"Size": {{ size }}}}}'),
        ("group.conf", "ID: {{ gid }}\nProperties:\n  Allocation: {Size: {{ size }}}\n"),
        ("group", "{ID: {{ gid }}, Properties: {Allocation: {Size: {{ size }}}}}"),
    ],
)
def test_load_renders_then_parses_by_extension_or_content(
    tmp_path: pathlib.Path, name: str, text: str
) -> None:
    path = tmp_path / name
    path.write_text(text)

    assert template.load(str(path), variables={"gid": "workers", "size": 3}) == GROUP


def test_load_reads_file_urls(tmp_path: pathlib.Path) -> None:
    (tmp_path / "my group.json").write_text('{"a": 1}')

    assert template.load((tmp_path / "my group.json").as_uri()) == {"a": 1}


def test_load_reads_http_urls_and_resolves_includes_there(web: tuple[str, pathlib.Path]) -> None:
    base, root = web
    (root / "init.sh").write_text("echo hello")
    (root / "flavor.yaml").write_text("Init:\n  - {{ include('init.sh') | tojson }}\n")

    assert template.load(base + "flavor.yaml") == {"Init": ["echo hello"]}


def test_loads_takes_text_the_caller_read() -> None:
    assert template.loads("a: {{ x }}", source="<stdin>", variables={"x": 1}) == {"a": 1}


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [("yaml", "a: [1, 2]", {"a": [1, 2]}), ("yaml", '{"a": 1}', {"a": 1}),
     ("json", '{"a": 1}', {"a": 1})],
)
def test_the_syntax_can_be_forced_whatever_the_name(
    kind: template.loading.Kind, text: str, expected: object
) -> None:
    assert template.loads(text, source="input.json", kind=kind) == expected


def test_forced_yaml_reports_yaml_errors() -> None:
    with pytest.raises(errors.UsageError, match=r"^in\.json:2: invalid YAML"):
        template.loads("a: 1\n  b: 2\n", source="in.json", kind="yaml")


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.json", '{\n  "a": 1,\n  "b": }', r"bad\.json:3: invalid JSON: Expecting value"),
        ("bad.yaml", "a: 1\nb: [1, 2\nc: 3\n",
         r"bad\.yaml:3: invalid YAML: while parsing a flow sequence"),
        ("bad.conf", '{\n"a": 1,,\n}', r"bad\.conf:2: invalid JSON"),
        ("bad.conf", "a: 1\n  b: 2\n", r"bad\.conf:2: invalid YAML: mapping values"),
        ("bad.json", '{"a": {{ x }}}', r"bad\.json:1: undefined value: 'x' is undefined"),
        ("bad.json", '{"a":\n\n{% for %}}', r"bad\.json:3: template syntax error"),
    ],
)
def test_each_parse_or_template_error_names_file_and_line(
    tmp_path: pathlib.Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)

    with pytest.raises(errors.UsageError, match=message) as caught:
        template.load(str(path))
    assert caught.value.data["source"] == str(path)


def test_a_parse_error_after_rendering_says_the_line_is_of_the_rendered_text(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"a": {{ value }}}')

    with pytest.raises(errors.UsageError, match=r"x\.json:1: invalid JSON.*rendered template"):
        template.load(str(path), variables={"value": "oops"})


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("missing.json", r"missing\.json: cannot read: No such file or directory"),
        ("ftp://127.0.0.1/x.json", r"unsupported URL scheme 'ftp'"),
    ],
)
def test_an_unreadable_source_is_named(
    tmp_path: pathlib.Path, where: str, message: str
) -> None:
    target = where if "://" in where else str(tmp_path / where)

    with pytest.raises(errors.UsageError, match=message):
        template.load(target)


def test_an_http_error_is_named(web: tuple[str, pathlib.Path]) -> None:
    base, _ = web

    with pytest.raises(errors.UsageError, match=r"nothere\.json: cannot read: HTTP 404"):
        template.load(base + "nothere.json")
