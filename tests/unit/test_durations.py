import pytest

from gateway.config.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("250ms", 0.25, id="milliseconds"),
        pytest.param("30s", 30.0, id="seconds"),
        pytest.param("5m", 300.0, id="minutes"),
        pytest.param("24h", 86400.0, id="hours"),
        pytest.param("1d", 86400.0, id="days"),
        pytest.param("1.5s", 1.5, id="a fraction with a unit"),
        pytest.param(" 5 m ", 300.0, id="blanks around and between number and unit"),
        pytest.param("45", 45.0, id="a bare number in a string means seconds"),
        pytest.param("0s", 0.0, id="zero"),
        pytest.param(30, 30.0, id="a YAML integer means seconds"),
        pytest.param(0.5, 0.5, id="a YAML float means seconds"),
    ],
)
def test_durations_are_read_in_seconds(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert isinstance(parse_duration(text), float)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("5 minutes", id="a spelled-out unit"),
        pytest.param("5M", id="an upper-case unit"),
        pytest.param("1w", id="weeks are not a unit"),
        pytest.param("-1s", id="a negative duration"),
        pytest.param("", id="an empty string"),
        pytest.param("s", id="a unit without a number"),
        pytest.param("1e3", id="exponent notation"),
        pytest.param("1h30m", id="compound durations"),
        pytest.param(True, id="a YAML boolean"),
        pytest.param(None, id="null"),
        pytest.param([5], id="a list"),
    ],
)
def test_anything_else_is_refused_with_the_expected_format(text: object) -> None:
    with pytest.raises(ValueError, match=r"^must be a duration like 250ms, 30s, 5m or 24h$"):
        parse_duration(text)
