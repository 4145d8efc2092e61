"""plait_metrics/settings.py: ``[plugins.metrics]`` read, checked, and bad values named."""

from __future__ import annotations

import pytest
from plait_metrics import MetricsConfigError, MetricsSettings
from plait_metrics.settings import DEFAULT_BUCKETS

from plait.errors import PlaitError


def test_an_empty_section_leaves_the_plugin_off():
    settings = MetricsSettings.from_mapping({})
    assert settings == MetricsSettings()
    assert not settings.enabled
    assert settings.addr == "127.0.0.1"
    assert settings.buckets == DEFAULT_BUCKETS


@pytest.mark.parametrize(
    "section",
    [{"port": 9464}, {"pushgateway": "http://gw:9091"}, {"statsd": "127.0.0.1:8125"}, {"enabled": True}],
)
def test_any_output_turns_the_plugin_on(section):
    assert MetricsSettings.from_mapping(section).enabled


def test_enabled_false_wins():
    assert not MetricsSettings.from_mapping({"port": 9464, "enabled": False}).enabled


def test_values_are_normalized():
    settings = MetricsSettings.from_mapping(
        {
            "pushgateway": "gw.example:9091/",
            "statsd": "[::1]:8125",
            "statsd_prefix": "ci.",
            "grouping_key": {"instance": "a", "shard": 3},
            "buckets": [1, 10],
            "push_timeout": 1,
        }
    )
    assert settings.pushgateway == "http://gw.example:9091"
    assert settings.statsd_address == ("::1", 8125)
    assert settings.statsd_prefix == "ci"
    assert settings.grouping_key == {"instance": "a", "shard": "3"}
    assert settings.buckets == (1.0, 10.0)
    assert settings.push_timeout == 1.0


@pytest.mark.parametrize(
    ("section", "fragments"),
    [
        ({"prot": 9464}, ["no setting 'prot'", "port"]),
        ({"port": "9464x"}, ["port = '9464x'", "1 to 65535"]),
        ({"port": 70000}, ["port = 70000"]),
        ({"port": True}, ["port = True"]),
        ({"pushgateway": "ftp://gw"}, ["pushgateway = 'ftp://gw'", "http://127.0.0.1:9091"]),
        ({"pushgateway": 9091}, ["pushgateway = 9091"]),
        ({"push_timeout": 0}, ["push_timeout = 0", "positive"]),
        ({"statsd": "localhost"}, ["statsd = 'localhost'", "host:port"]),
        ({"statsd": "localhost:99999"}, ["statsd = 'localhost:99999'"]),
        ({"statsd_interval": -1}, ["statsd_interval = -1"]),
        ({"grouping_key": "instance=a"}, ["grouping_key = 'instance=a'", "table"]),
        ({"grouping_key": {"flow": "x"}}, ["'flow' or 'job'", "remove it"]),
        ({"buckets": [10, 1]}, ["buckets = [10, 1]", "increasing"]),
        ({"buckets": []}, ["buckets = []"]),
        ({"job": ""}, ["job = ''"]),
        ({"enabled": "yes"}, ["enabled = 'yes'", "true or false"]),
        ({"addr": ""}, ["addr = ''"]),
        ({"pushgateway": "http://ci:hunter22@gw:9091"}, ["user or password in its URL", "push_password_secret"]),
        ({"push_username": "ci"}, ["go together"]),
        ({"push_password_secret": ""}, ["push_password_secret = <an empty string>"]),
    ],
)
def test_bad_values_name_the_key_the_value_and_the_fix(section, fragments):
    with pytest.raises(MetricsConfigError) as info:
        MetricsSettings.from_mapping(section)
    message = str(info.value)
    assert message.startswith("[plugins.metrics]")
    for fragment in fragments:
        assert fragment in message
    assert isinstance(info.value, PlaitError)


def test_a_url_with_a_password_is_refused_without_echoing_it():
    with pytest.raises(MetricsConfigError) as info:
        MetricsSettings.from_mapping({"pushgateway": "http://ci:hunter22@gw:9091"})
    assert "hunter22" not in str(info.value)


@pytest.mark.parametrize("value", [123456789, ["hunter22-pw"], {"pw": "hunter22-pw"}])
def test_a_wrong_push_password_secret_is_named_never_shown(value):
    with pytest.raises(MetricsConfigError) as info:
        MetricsSettings.from_mapping({"push_username": "ci", "push_password_secret": value})
    message = str(info.value)
    assert "push_password_secret" in message and "not shown" in message
    assert "123456789" not in message and "hunter22" not in message
