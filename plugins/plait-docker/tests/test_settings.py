"""``[plugins.docker]`` and ``DockerSettings``: where the engine is, clear errors for bad values."""

from __future__ import annotations

import pytest
from plait_docker import DockerConfigError, DockerEngineError, DockerRun, DockerSettings, clear_clients, get_client
from plait_docker.settings import engine_address, plugin_settings, registry_auth, registry_of, ulimit_specs


@pytest.fixture(autouse=True)
def _fresh_clients():
    clear_clients()
    yield
    clear_clients()


def test_base_url_from_the_config_file_reaches_the_engine(plait_config, docker_host, monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    plait_config(f'[plugins.docker]\nbase_url = "{docker_host}"\ntimeout = 30\n')
    assert get_client().ping() is True
    assert engine_address() == docker_host


def test_docker_host_is_used_without_a_base_url(plait_config, docker_host, monkeypatch):
    plait_config("")
    monkeypatch.setenv("DOCKER_HOST", docker_host)
    assert get_client().ping() is True
    assert engine_address() == f"{docker_host} (DOCKER_HOST)"


def test_a_task_setting_overrides_the_config(plait_config, docker_host, tmp_path, busybox_image):
    plait_config(f'[plugins.docker]\nbase_url = "unix://{tmp_path}/nothing.sock"\nnetwork_mode = "none"\n')
    with pytest.raises(DockerEngineError, match="cannot reach the container engine"):
        DockerRun(image=busybox_image, command=["true"]).run()
    ok = DockerRun(image=busybox_image, command=["echo", "ok"], docker={"base_url": docker_host})
    assert ok.run() == "ok"


def test_environment_variables_override_the_config(plait_config, monkeypatch):
    plait_config('[plugins.docker]\ntimeout = 10\nnetwork_mode = "bridge"\n')
    monkeypatch.setenv("PLAIT__PLUGINS__DOCKER__NETWORK_MODE", "none")
    from plait.config import reset_config

    reset_config()
    settings = plugin_settings()
    assert (settings.timeout, settings.network_mode) == (10, "none")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("base_uri = 'unix:///x'", r"\[plugins.docker\] has no setting 'base_uri'; did you mean 'base_url'\?"),
        ("timeout = -1", "plugins.docker.timeout = -1 must be a positive number of seconds"),
        ("tls = 'yes'", "plugins.docker.tls = 'yes' must be true or false"),
        ("client_cert = '/c.pem'", "client_cert and client_key go together"),
        ("ulimits = { nofile = 'many' }", "ulimit 'nofile' must be an integer"),
        ("labels = 'team'", "plugins.docker.labels = 'team' must be a table"),
        ("max_pool_size = 0", "max_pool_size = 0 must be at least 1"),
        (
            "[plugins.docker.registries.'r.example.com']\nusername = 'u'\npassword = 'p'",
            r"has no setting 'password'; did you mean 'password_secret'\?",
        ),
        ("[plugins.docker.registries.'r.example.com']\nusername = 'u'", "needs username.*and password_secret"),
    ],
)
def test_bad_settings_name_the_key_and_the_fix(plait_config, toml, message):
    header = "" if toml.startswith("[") else "[plugins.docker]\n"
    plait_config(header + toml + "\n")
    with pytest.raises(DockerConfigError, match=message) as raised:
        plugin_settings()
    if "plugins.docker" in message:  # a key of the section itself: where its value came from
        assert "plait-config.toml" in str(raised.value)  # where the bad value came from


def test_a_bad_environment_override_names_its_variable(plait_config, monkeypatch):
    plait_config("")
    monkeypatch.setenv("PLAIT__PLUGINS__DOCKER__TIMEOUT", "soon")
    from plait.config import reset_config

    reset_config()
    with pytest.raises(DockerConfigError, match=r"timeout = 'soon' must be a number.*PLAIT__PLUGINS__DOCKER__TIMEOUT"):
        plugin_settings()


def test_defaults_come_from_the_declaration(plait_config):
    plait_config("")
    settings = plugin_settings()
    assert (settings.timeout, settings.max_pool_size, settings.tls, settings.base_url) == (60.0, 64, False, None)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"timeout": 0}, "DockerRun 'x' docker=: timeout = 0 must be a positive number of seconds"),
        ({"base_uri": "unix:///x"}, "DockerRun 'x' docker=: unknown setting 'base_uri'; did you mean 'base_url'"),
        ({"client_key": "/k.pem"}, "client_cert and client_key go together"),
    ],
)
def test_settings_given_in_code_are_checked_against_the_same_declaration(given, message):
    with pytest.raises(DockerConfigError, match=message):
        DockerRun(image="busybox", command=["true"], docker=given, name="x")
    if "base_uri" not in given:  # not a field of DockerSettings: a TypeError there
        with pytest.raises(DockerConfigError, match="DockerSettings: " + message.split("docker=: ")[-1]):
            DockerSettings(**given)


def test_plait_config_and_plait_plugins_show_the_section(plait_config, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    plait = str(Path(sys.executable).parent / "plait")
    config = tmp_path / "docker.toml"
    config.write_text(
        '[plugins.docker]\ntimeout = 5\n[plugins.docker.registries."r.example.com"]\n'
        'username = "ci"\npassword_secret = "REG_PW"\n'
    )
    env = {**os.environ, "PLAIT_CONFIG": str(config), "COLUMNS": "200"}
    shown = subprocess.run([plait, "config"], capture_output=True, text=True, env=env, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "plugins.docker" in shown.stdout and "timeout" in shown.stdout and "5.0" in shown.stdout
    plugins = subprocess.run([plait, "plugins"], capture_output=True, text=True, env=env, timeout=120)
    line = next(line for line in plugins.stdout.splitlines() if " docker " in f" {line} ")
    assert "configured" in line and "misconfigured" not in line, plugins.stdout
    config.write_text("[plugins.docker]\ntimeuot = 5\n")
    checked = subprocess.run([plait, "config", "--check"], capture_output=True, text=True, env=env, timeout=120)
    assert checked.returncode != 0
    assert "did you mean 'timeout'" in checked.stdout + checked.stderr


def test_a_registry_password_comes_from_a_secret_and_is_masked(plait_config):
    from plait.secrets import mask

    plait_config(
        "[plugins.docker.registries.'registry.example.com:5000']\nusername = 'ci'\npassword_secret = 'REG_PW'\n",
        REG_PW="hunter2-registry",
    )
    settings = plugin_settings()
    assert registry_auth("registry.example.com:5000/team/app", settings) == {
        "username": "ci",
        "password": "hunter2-registry",
    }
    assert registry_auth("docker.io/library/alpine", settings) is None
    assert mask("login with hunter2-registry") == "login with ********"
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("alpine", "docker.io"),
        ("team/app", "docker.io"),
        ("registry.example.com/team/app", "registry.example.com"),
        ("127.0.0.1:5000/app", "127.0.0.1:5000"),
        ("localhost/app", "localhost"),
    ],
)
def test_registry_of_an_image_name(image, registry):
    assert registry_of(image) == registry


def test_ulimits_take_a_limit_or_soft_and_hard():
    assert ulimit_specs({"nofile": 1024, "nproc": [10, 20]}, "x") == [
        {"Name": "nofile", "Soft": 1024, "Hard": 1024},
        {"Name": "nproc", "Soft": 10, "Hard": 20},
    ]


def test_settings_objects_merge_over_the_config(plait_config):
    plait_config("[plugins.docker]\ntimeout = 10\nnetwork_mode = 'none'\n")
    merged = DockerSettings(timeout=5).merged_over(plugin_settings())
    assert (merged.timeout, merged.network_mode) == (5, "none")
