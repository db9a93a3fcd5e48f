"""Rendering template strings: the functions available, and the error for each way to fail."""

from __future__ import annotations

import pathlib

import pytest

from infrakit import errors, template


@pytest.mark.parametrize(
    ("text", "variables", "expected"),
    [
        ("plain {text} ${#arr}\n", {}, "plain {text} ${#arr}\n"),
        ("{{ port }}", {"port": 8080}, "8080"),
        ("{{ var('port') }}", {"port": 8080}, "8080"),
        ("{{ var('port', 80) }}", {}, "80"),
        ("{{ var('env', 'x') }}", {}, "x"),
        ("{{ json({'a': [1, 'b']}) }}", {}, '{"a": [1, "b"]}'),
        ("{{ value | json }}", {"value": {"k": None}}, '{"k": null}'),
        ("{{ value | tojson }}", {"value": ["x"]}, '["x"]'),
        ("{{ yaml({'a': 1, 'b': [2]}) }}", {}, "a: 1\nb:\n- 2"),
        ("{{ value | yaml }}", {"value": {"k": "v"}}, "k: v"),
        ("{{ 'Web' | lower }}-{{ 'web' | upper }}", {}, "web-WEB"),
        ("{% for i in range(3) %}{{ i }}{% endfor %}", {}, "012"),
        ("a{## a comment ##}b", {}, "ab"),
        ("{{ tags['port'] }}", {"tags": {"port": "9"}}, "9"),
    ],
)
def test_render_offers_variables_and_functions(
    text: str, variables: dict[str, object], expected: str
) -> None:
    assert template.render(text, variables=variables) == expected


def test_env_reads_the_environment_with_a_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IK_TEST_REGION", "eu-west-1")
    monkeypatch.delenv("IK_TEST_UNSET", raising=False)

    assert template.render("{{ env('IK_TEST_REGION') }}") == "eu-west-1"
    assert template.render("{{ env('IK_TEST_UNSET', 'none') }}") == "none"
    assert template.render("{{ env('IK_TEST_UNSET', none) is none }}") == "True"
    monkeypatch.setenv("IK_TEST_EMPTY", "")
    assert template.render("[{{ env('IK_TEST_EMPTY', 'x') }}]") == "[]"  # set, though empty


def test_env_without_a_default_refuses_an_unset_variable_naming_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The example launch config once wrote instances into ./None/ when INFRAKIT_HOME was unset.
    monkeypatch.delenv("IK_TEST_UNSET", raising=False)
    with pytest.raises(errors.UsageError) as caught:
        template.render("--dir {{ env('IK_TEST_UNSET') }}/files", source="plugins.yml")
    assert caught.value.message == (
        "plugins.yml:1: undefined value: environment variable 'IK_TEST_UNSET' is not set "
        "(set it, or give a default: env('IK_TEST_UNSET', \"...\"))")


def test_include_is_relative_to_the_including_file(tmp_path: pathlib.Path) -> None:
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "init.sh").write_text("echo {{ name }}")
    (tmp_path / "parts" / "outer.txt").write_text("[{{ include('init.sh') }}]")
    main = tmp_path / "main.txt"

    text = "{{ include('parts/outer.txt') }}"
    assert template.render(text, source=str(main), variables={"name": "web"}) == "[echo web]"


def test_include_follows_urls_relative_to_a_url(web: tuple[str, pathlib.Path]) -> None:
    base, root = web
    (root / "init.sh").write_text("echo {{ var('who', 'me') }}")

    text = "{{ include('init.sh') }}"
    assert template.render(text, source=base + "main.json") == "echo me"
    absolute = f"{{{{ include('{base}init.sh') }}}}"
    assert template.render(absolute, variables={"who": "x"}) == "echo x"


@pytest.mark.parametrize(
    ("text", "variables", "message"),
    [
        ("a\nb\n{% if %}", {}, r"^cfg\.json:3: template syntax error"),
        ("a\n{{ port }}", {}, r"^cfg\.json:2: undefined value: 'port' is undefined"),
        ("{{ tags['port'] }}", {"tags": {}}, r"^cfg\.json:1: undefined value: .*'port'"),
        ("x\n\n{{ var('port') }}", {}, r"^cfg\.json:3: undefined value: no variable 'port'"),
        ("{{ ''.__class__.__mro__ }}", {}, r"^cfg\.json:1: not allowed in a template"),
        ("{{ 1 / 0 }}", {}, r"^cfg\.json:1: template error: ZeroDivisionError"),
        ("{{ json(x) }}", {"x": {1, 2}}, r"^cfg\.json:1: template error: TypeError"),
        ("{{ include('nothere.txt') }}", {}, r"^cfg\.json:1: template error: include 'nothere"),
    ],
)
def test_each_error_names_the_source_line_and_cause(
    tmp_path: pathlib.Path, text: str, variables: dict[str, object], message: str
) -> None:
    with pytest.raises(errors.UsageError, match=message) as caught:
        template.render(text, source="cfg.json", variables=variables)
    assert caught.value.data["source"] == "cfg.json"


def test_an_error_inside_an_included_file_names_that_file(tmp_path: pathlib.Path) -> None:
    (tmp_path / "part.txt").write_text("ok\n{{ missing }}")

    with pytest.raises(errors.UsageError, match=r"part\.txt:2: undefined value"):
        template.render("{{ include('part.txt') }}", source=str(tmp_path / "main.txt"))


def test_an_include_loop_is_stopped(tmp_path: pathlib.Path) -> None:
    (tmp_path / "loop.txt").write_text("{{ include('loop.txt') }}")

    with pytest.raises(errors.UsageError, match="nested deeper than 16"):
        template.render("{{ include('loop.txt') }}", source=str(tmp_path / "main.txt"))


def test_a_template_without_source_is_named_string() -> None:
    with pytest.raises(errors.UsageError, match=r"^<string>:1: undefined value"):
        template.render("{{ nope }}")
