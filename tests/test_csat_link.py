"""The CSAT link points where customers reach this API, whatever port it serves on."""

from __future__ import annotations

from helpdesk.config import load_settings
from helpdesk.csat.service import link


def test_csat_link_follows_helpdesk_port() -> None:
    settings = load_settings({"HELPDESK_PORT": "9000"})
    assert link(settings, "tok") == "http://127.0.0.1:9000/csat/tok"


def test_csat_link_on_a_wildcard_host_is_reached_on_loopback() -> None:
    settings = load_settings({"HELPDESK_HOST": "0.0.0.0", "HELPDESK_PORT": "8123"})  # noqa: S104
    assert link(settings, "tok") == "http://127.0.0.1:8123/csat/tok"


def test_configured_public_address_wins_over_the_port() -> None:
    settings = load_settings(
        {
            "HELPDESK_PORT": "9000",
            "HELPDESK_CSAT__PUBLIC_BASE_URL": "https://help.example.com/",
        }
    )
    assert link(settings, "tok") == "https://help.example.com/csat/tok"
