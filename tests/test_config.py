"""Settings: types converted, bad values refused loudly, secrets never printed."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from videoassist.config import Bounds, Secret, Settings, documentation, load_settings, say_number
from videoassist.errors import ConfigError


def test_defaults_derive_public_url_and_origin() -> None:
    settings = load_settings({})
    assert settings.public_url == "http://127.0.0.1:8080"
    assert settings.allowed_origins == ("http://127.0.0.1:8080",)
    assert settings.data_dir == Path("data")


def test_environment_values_are_converted() -> None:
    settings = load_settings({
        "VIDEOASSIST_PORT": "9000",
        "VIDEOASSIST_PUBLIC_URL": "https://assist.example.com/",
        "VIDEOASSIST_ALLOWED_ORIGINS": "https://a.example.com, https://b.example.com",
        "VIDEOASSIST_TRUST_FORWARDED_FOR": "yes",
        "VIDEOASSIST_WS_AUTH_TIMEOUT_S": "2.5",
        "VIDEOASSIST_JWT_KEYS": "k1:" + "x" * 40,
        "PATH": "/usr/bin",
    })
    assert settings.port == 9000
    assert settings.public_url == "https://assist.example.com"
    assert settings.allowed_origins == ("https://a.example.com", "https://b.example.com")
    assert settings.trust_forwarded_for is True
    assert settings.ws_auth_timeout_s == 2.5
    assert isinstance(settings.jwt_keys, Secret)


def test_toml_file_then_environment_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "videoassist.toml"
    config.write_text('port = 9001\ncompany_name = "Acme Heating"\nturn_urls = ["turn:t:3478"]\n')
    settings = load_settings({"VIDEOASSIST_PORT": "9002"}, config, host="0.0.0.0")
    assert (settings.port, settings.company_name, settings.host) == (9002, "Acme Heating",
                                                                     "0.0.0.0")
    assert settings.turn_urls == ("turn:t:3478",)


@pytest.mark.parametrize("env, name", [
    ({"VIDEOASSIST_PORT": "eighty"}, "VIDEOASSIST_PORT"),
    ({"VIDEOASSIST_PORT": "70000"}, "VIDEOASSIST_PORT"),
    ({"VIDEOASSIST_ACCESS_LOG": "maybe"}, "VIDEOASSIST_ACCESS_LOG"),
    ({"VIDEOASSIST_INVITE_MAX_TTL_S": "90000"}, "VIDEOASSIST_INVITE_MAX_TTL_S"),
    ({"VIDEOASSIST_TOKEN_LEEWAY_S": "60"}, "VIDEOASSIST_TOKEN_LEEWAY_S"),
    ({"VIDEOASSIST_TURN_TTL_S": "3600"}, "VIDEOASSIST_TURN_TTL_S"),
    ({"VIDEOASSIST_PUBLIC_URL": "ftp://x"}, "VIDEOASSIST_PUBLIC_URL"),
    ({"VIDEOASSIST_ALLOWED_ORIGINS": "https://a.example.com/path"}, "ALLOWED_ORIGINS"),
    ({"VIDEOASSIST_TURN_URLS": "http://turn"}, "VIDEOASSIST_TURN_URLS"),
    ({"VIDEOASSIST_NO_SUCH_THING": "1"}, "VIDEOASSIST_NO_SUCH_THING"),
    ({"VIDEOASSIST_LOG_FORMAT": "xml"}, "VIDEOASSIST_LOG_FORMAT"),
    ({"VIDEOASSIST_DRAIN_TIMEOUT_S": "-1"}, "VIDEOASSIST_DRAIN_TIMEOUT_S"),
    ({"VIDEOASSIST_DRAIN_TIMEOUT_S": "nan"}, "VIDEOASSIST_DRAIN_TIMEOUT_S"),
    ({"VIDEOASSIST_DRAIN_TIMEOUT_S": "1e9"}, "VIDEOASSIST_DRAIN_TIMEOUT_S"),
    ({"VIDEOASSIST_METRICS_TOKEN": "short"}, "VIDEOASSIST_METRICS_TOKEN"),
])
def test_bad_values_fail_loudly_naming_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings(env)


@pytest.mark.parametrize("env, message", [
    ({"VIDEOASSIST_MEDIA_PORTS": "40000"}, "MEDIA_PORTS must be FIRST-LAST"),
    ({"VIDEOASSIST_MEDIA_PORTS": "40000-39999"}, "MEDIA_PORTS must lie within 1024..65535"),
    ({"VIDEOASSIST_MEDIA_PORTS": "80-90"}, "MEDIA_PORTS must lie within 1024..65535"),
    ({"VIDEOASSIST_MEDIA_PORTS": "65535-65536"}, "MEDIA_PORTS must lie within 1024..65535"),
    ({"VIDEOASSIST_MEDIA_PORTS": "40000-40000"}, "MEDIA_PORTS must hold at least 2 ports"),
    ({"VIDEOASSIST_MEDIA_ADDRESSES": "0.0.0.0"}, "MEDIA_ADDRESSES: '0.0.0.0' is every address"),
    ({"VIDEOASSIST_MEDIA_ADDRESSES": "eth0,a b"}, "MEDIA_ADDRESSES: 'a b' is neither"),
    ({"VIDEOASSIST_MEDIA_ANNOUNCED_ADDRESS": "cloud.example.com"},
     "MEDIA_ANNOUNCED_ADDRESS must be an IP address"),
    ({"VIDEOASSIST_MEDIA_ANNOUNCED_ADDRESS": "::"}, "MEDIA_ANNOUNCED_ADDRESS must be an "
                                                    "address clients can reach"),
])
def test_bad_media_settings_are_refused_with_what_is_wrong(env: dict[str, str],
                                                           message: str) -> None:
    with pytest.raises(ConfigError, match=f"VIDEOASSIST_{re.escape(message)}"):
        load_settings(env)


def test_media_settings_are_read() -> None:
    assert load_settings({}).media_port_range is None
    settings = load_settings({"VIDEOASSIST_MEDIA_PORTS": " 40000 - 40999 ",
                              "VIDEOASSIST_MEDIA_ADDRESSES": "eth0, 10.0.0.5,fd00::2",
                              "VIDEOASSIST_MEDIA_ANNOUNCED_ADDRESS": "203.0.113.7",
                              "VIDEOASSIST_MEDIA_TURN": "false"})
    assert settings.media_port_range == (40000, 40999)
    assert settings.media_addresses == ("eth0", "10.0.0.5", "fd00::2")
    assert (settings.media_announced_address, settings.media_turn) == ("203.0.113.7", False)


def test_bad_toml_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("port = = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({}, config)
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings({}, tmp_path / "missing.toml")


def test_secrets_never_show() -> None:
    settings = load_settings({"VIDEOASSIST_TURN_SECRET": "hunter2-turn-secret"})
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.turn_secret)
    assert settings.turn_secret is not None
    assert settings.turn_secret.reveal() == "hunter2-turn-secret"


def test_the_database_is_sqlite_in_the_data_dir_unless_a_postgresql_url_is_set() -> None:
    settings = load_settings({"VIDEOASSIST_DATA_DIR": "/srv/va"})
    assert settings.database == Path("/srv/va/videoassist.sqlite3") == settings.database_path
    url = "postgresql://va:hunter2@db.example:5432/videoassist"
    settings = load_settings({"VIDEOASSIST_DATABASE_URL": url})
    assert settings.database == url and "hunter2" not in repr(settings)
    assert load_settings({"VIDEOASSIST_DATABASE_URL": ""}).database_url is None
    for bad in ("mysql://va:hunter2@db/videoassist", "postgresql://va:hunter2@db",
                "/var/lib/hunter2.sqlite3"):
        with pytest.raises(ConfigError, match="VIDEOASSIST_DATABASE_URL") as caught:
            load_settings({"VIDEOASSIST_DATABASE_URL": bad})
        assert "hunter2" not in str(caught.value)


def test_the_poll_may_be_long_only_where_the_database_notifies() -> None:
    """On SQLite the poll is the bound (at most 1 s); on PostgreSQL the notifications
    are, and the poll only the safety net (at most an hour)."""
    url = "postgresql://va:hunter2@db.example:5432/videoassist"
    with pytest.raises(ConfigError, match=r"VIDEOASSIST_REVOCATION_POLL_S must be 0\.\.1 "):
        load_settings({"VIDEOASSIST_REVOCATION_POLL_S": "30"})
    assert load_settings({"VIDEOASSIST_REVOCATION_POLL_S": "3600",
                          "VIDEOASSIST_DATABASE_URL": url}).revocation_poll_s == 3600
    with pytest.raises(ConfigError, match=r"VIDEOASSIST_REVOCATION_POLL_S must be 0\.\.3600 "):
        load_settings({"VIDEOASSIST_REVOCATION_POLL_S": "3601",
                       "VIDEOASSIST_DATABASE_URL": url})


def test_the_listening_connection_may_go_elsewhere_on_postgresql_only() -> None:
    url = "postgresql://va:hunter2@db.example:6432/videoassist"  # a pooler
    direct = "postgresql://va:hunter2@db.example:5432/videoassist"
    settings = load_settings({"VIDEOASSIST_DATABASE_URL": url,
                              "VIDEOASSIST_DATABASE_LISTEN_URL": direct})
    assert settings.database_listen_url is not None
    assert settings.database_listen_url.reveal() == direct
    assert "hunter2" not in repr(settings)
    with pytest.raises(ConfigError, match="set VIDEOASSIST_DATABASE_URL too"):
        load_settings({"VIDEOASSIST_DATABASE_LISTEN_URL": direct})
    with pytest.raises(ConfigError, match="VIDEOASSIST_DATABASE_LISTEN_URL must be") as caught:
        load_settings({"VIDEOASSIST_DATABASE_URL": url,
                       "VIDEOASSIST_DATABASE_LISTEN_URL": "mysql://va:hunter2@db/x"})
    assert "hunter2" not in str(caught.value)


def test_every_field_is_documented_in_the_class() -> None:
    docs = documentation()
    assert len(docs) == len(Settings.__dataclass_fields__)
    assert all(text.strip() for text in docs.values())


def test_an_unknown_variable_is_refused_with_the_nearest_name() -> None:
    with pytest.raises(ConfigError, match=r"unknown setting VIDEOASSIST_DRAIN_TIMEOUT "
                                          r"\(did you mean VIDEOASSIST_DRAIN_TIMEOUT_S\?\)"):
        load_settings({"VIDEOASSIST_DRAIN_TIMEOUT": "60"})
    with pytest.raises(ConfigError, match=r"^unknown setting VIDEOASSIST_ZZZZZZ$"):
        load_settings({"VIDEOASSIST_ZZZZZZ": "1"})


def _bounded() -> list[tuple[str, Bounds]]:
    return [(f.name, f.metadata["bounds"]) for f in dataclasses.fields(Settings)
            if f.metadata.get("bounds") is not None]


def test_each_setting_s_bounds_are_checked_at_both_edges_and_said() -> None:
    """A number setting's bounds are stated once, beside it (``Bounds``): each end is
    taken, a step past it is refused, naming the variable and the bounds."""
    bounded = _bounded()
    assert len(bounded) > 40
    for name, bounds in bounded:
        variable = f"VIDEOASSIST_{name.upper()}"
        step = 1 if isinstance(getattr(Settings(), name), int) else 0.5
        edges = [e for e in (bounds.low, bounds.high) if e is not None]
        for edge in edges:
            value = type(getattr(Settings(), name))(edge)
            if name == "invite_max_ttl_s":  # the default link lifetime must fit in it
                load_settings({variable: str(value), "VIDEOASSIST_INVITE_TTL_S": "1"})
            else:
                load_settings({variable: str(value)})
        outside = ([bounds.low - step] if bounds.low is not None else []) + (
            [bounds.high + step] if bounds.high is not None else []) + (
            [bounds.above] if bounds.above is not None else [])
        assert outside, name
        for value in outside:
            with pytest.raises(ConfigError) as refused:
                load_settings({variable: str(type(getattr(Settings(), name))(value))})
            assert str(refused.value).startswith(f"{variable} must be {bounds.say()}, got"), (
                name, str(refused.value))


def test_the_settings_table_states_each_range_the_code_checks() -> None:
    """docs/configuration.md says each setting's range where it has two ends ("0 to
    3600"), as the code checks it."""
    text = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text("utf-8")
    rows = dict(re.findall(r"^\| `(VIDEOASSIST_[A-Z0-9_]+)` \|[^|]*\|[^|]*\|(.*)$", text,
                           re.M))
    unsaid = []
    for name, bounds in _bounded():
        if bounds.low is None or bounds.high is None:
            continue
        row = rows[f"VIDEOASSIST_{name.upper()}"]
        low, high = say_number(bounds.low), say_number(bounds.high)
        if not any(said in row for said in (f"{low} to {high}", f"{low}..{high}",
                                             f"at most {high}")):
            unsaid.append((name, f"{low} to {high}"))
    assert unsaid == []
