"""`redirect` in web.json5: how the rules are read, shown back and refused, from real
files. The replies, over real sockets, are in tests/wire/test_redirects.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from httap import config
from httap.config import ConfigError


def test_no_redirects_by_default():
    assert config.load(None, env={}, overrides={"documents": "."}).redirect == ()


def test_to_dict_gives_the_keys_back(tmp_path: Path):
    path = tmp_path / "web.json5"
    path.write_text('{redirect: [{from: "/*", to: "https://host"}]}')
    loaded = config.load(str(path), env={})
    assert config.to_dict(loaded)["redirect"] == [
        {"from": "/*", "to": "https://host/", "status": 302}
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("5", "redirect[0]: found 5 (a number), expected an object like"),
        ('{from: "/a"}', 'redirect[0]: missing key "to"'),
        ('{from: "/a", to: "/b", code: 301}', "redirect[0].code: unknown key; allowed keys"),
        ('{from: "a", to: "/b"}', 'redirect[0].from: found "a", expected a path like "/old"'),
        ('{from: "/a?b", to: "/b"}', 'redirect[0].from: found "/a?b", expected a path'),
        ('{from: "/a*b", to: "/b"}', 'redirect[0].from: found "/a*b", expected a path'),
        ('{from: "/a", to: "ftp://h/"}', 'redirect[0].to: found "ftp://h/", expected a path'),
        ('{from: "/a", to: ""}', 'redirect[0].to: found "", expected a path'),
        ('{from: "/a", to: "/b c"}', 'redirect[0].to: found "/b c", expected a path'),
        (
            '{from: "/a", to: "/b?lang=fr"}',
            'redirect[0].to: found "/b?lang=fr", expected a path like "/new" or a URL like'
            ' "https://host/new", with no query: the request\'s is kept',
        ),
        ('{from: "/a", to: "/b/*"}', 'redirect[0].to: ends with "*", but "from" is not a prefix'),
        (
            '{from: "/a", to: "/b", status: 304}',
            "redirect[0].status: found 304, expected one of 301",
        ),
        ('{from: "/a", to: "/b", status: "301"}', 'redirect[0].status: found "301" (a string)'),
        (
            '{from: "/a", to: "/b", scheme: "ftp"}',
            'redirect[0].scheme: found "ftp", expected "http" or "https"',
        ),
    ],
)
def test_config_errors_are_one_line(tmp_path: Path, entry, message):
    path = tmp_path / "web.json5"
    path.write_text(f"{{redirect: [{entry}]}}")
    with pytest.raises(ConfigError) as info:
        config.load(str(path), env={})
    assert str(info.value).startswith(f"{path}: {message}")
    assert "\n" not in str(info.value)
