import pytest

from infrakit import durations, errors


@pytest.mark.parametrize(("text", "seconds"), [
    ("500ms", 0.5), ("10s", 10.0), ("1m", 60.0), ("1h30m", 5400.0), ("1.5s", 1.5),
    ("0", 0.0), ("250us", 0.00025), ("-2s", -2.0), ("2m3s", 123.0), ("100ns", 1e-7),
])
def test_go_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert durations.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "s", "1x", "1m 2s", "ten seconds", "1.2.3s"])
def test_a_bad_duration_names_the_field_and_the_expected_form(text: str) -> None:
    with pytest.raises(errors.InvalidError, match=r"--poll-interval: expected a duration such as"):
        durations.parse_duration(text, field="--poll-interval")


@pytest.mark.parametrize(("value", "seconds"), [("10s", 10.0), (3, 3.0), (0.5, 0.5)])
def test_config_values_are_durations_or_numbers_of_seconds(value: object, seconds: float) -> None:
    assert durations.seconds(value) == seconds


@pytest.mark.parametrize("value", ["-1s", -3, True, None, "soon"])
def test_config_values_refuse_negative_and_non_durations(value: object) -> None:
    with pytest.raises(ValueError, match="expected"):
        durations.seconds(value)


@pytest.mark.parametrize(("seconds", "text"), [(60, "60s"), (0.25, "250ms"), (1.5, "1.5s"),
                                               (0, "0s")])
def test_durations_format_for_people(seconds: float, text: str) -> None:
    assert durations.format_duration(seconds) == text
