"""core.trials.destinations: webhooks stay out of the service's own network unless allowed."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from core.config import Settings
from core.errors import InvalidInput
from core.spec import ComparisonSpec
from core.trials.destinations import Refused, allows_private, literal_refusal, resolve_public
from core.trials.validation import validate_comparison


def test_private_destinations_are_allowed_in_development_only_by_default() -> None:
    assert allows_private(Settings())
    production = Settings(
        env="production", database_url="postgresql://db/archbench", broker_url="redis://r:6379/0"
    )
    assert not allows_private(production)
    assert allows_private(production.model_copy(update={"webhook_allow_private": True}))
    assert not allows_private(Settings(webhook_allow_private=False))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://172.16.5.4/hook",
        "http://100.64.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fd00::1]/hook",
        # IPv6 forms of inside IPv4 addresses: NAT64, 6to4, IPv4-compatible
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
        "http://[64:ff9b::a00:1]/hook",
        "http://[64:ff9b:1::a00:1]/hook",
        "http://[2002:7f00:1::1]/hook",
        "http://[2002:a9fe:a9fe::]/hook",
        "http://[::7f00:1]/hook",
        "http://[::a9fe:a9fe]/hook",
        "http://[::ffff:a9fe:a9fe]/hook",
        # IPv4-translated (SIIT) forms and site-local addresses
        "http://[::ffff:0:7f00:1]/hook",
        "http://[::ffff:0:a9fe:a9fe]/latest/meta-data/",
        "http://[::ffff:0:a00:1]/hook",
        "http://[fec0::1]/hook",
        "http://[feff:ffff::1]/hook",
        "http://224.0.0.1/hook",
        "http://localhost:9000/hook",
        "https://api.localhost/hook",
    ],
)
def test_addresses_inside_are_refused_without_resolving(url: str) -> None:
    assert literal_refusal(url)
    with pytest.raises(Refused):
        resolve_public(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://8.8.8.8/hook",
        "https://hooks.example.com/x",
        "https://[64:ff9b::808:808]/x",  # NAT64 of 8.8.8.8: public
        "https://[2002:808:808::1]/x",  # 6to4 of 8.8.8.8
        "https://[2606:4700:4700::1111]/x",
    ],
)
def test_public_addresses_and_names_pass_the_literal_check(url: str) -> None:
    assert literal_refusal(url) is None


def _resolving_to(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> None:
    def fake(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    # the module core.trials.destinations resolves with
    monkeypatch.setattr(socket, "getaddrinfo", fake)


def test_a_name_resolving_inside_is_refused_without_saying_where(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _resolving_to(monkeypatch, "93.184.216.34", "10.0.0.7")  # one bad answer is enough
    with pytest.raises(Refused) as refused:
        resolve_public("https://hooks.example.com/x")
    # The service's internal DNS answers are not for whoever chose the URL to learn.
    assert str(refused.value) == "private address"
    assert "10.0.0.7" not in str(refused.value)
    assert "93.184" not in str(refused.value)


def test_a_name_resolving_to_an_ipv6_form_of_an_inside_address_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for address in (
        "64:ff9b::a9fe:a9fe",
        "2002:7f00:1::1",
        "::7f00:1",
        "::ffff:0:a00:7",
        "fec0::7",
    ):
        _resolving_to(monkeypatch, address)
        with pytest.raises(Refused, match=r"^private address$"):
            resolve_public("https://hooks.example.com/x")


def test_the_post_goes_to_the_checked_address(monkeypatch: pytest.MonkeyPatch) -> None:
    _resolving_to(monkeypatch, "93.184.216.34")
    target, host = resolve_public("https://user:pw@hooks.example.com:8443/x?y=1")
    assert target == "https://user:pw@93.184.216.34:8443/x?y=1"
    assert host == "hooks.example.com"


def test_submit_refuses_an_inside_callback_url_with_its_location() -> None:
    settings = Settings(webhook_secret="s", webhook_allow_private=False)
    spec = ComparisonSpec.model_validate(
        {
            "name": "ssrf",
            "dataset": {"name": "digits"},
            "seeds": [0],
            "training": {"epochs": 1},
            "variants": [
                {"name": "m", "layers": [{"type": "Flatten"}, {"type": "Dense", "units": 10}]}
            ],
            "callback_url": "http://169.254.169.254/latest/meta-data/",
        }
    )
    with pytest.raises(InvalidInput) as caught:
        validate_comparison(spec, settings)
    (error,) = [e for e in caught.value.errors if e["loc"][-1] == "callback_url"]
    assert "public address" in error["msg"]
    allowed = Settings(webhook_secret="s", webhook_allow_private=True)
    validate_comparison(spec, allowed)  # a development server may call back to itself
