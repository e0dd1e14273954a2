"""reports.clientip: X-Forwarded-For believed only through TRUSTED_PROXIES."""
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory

from reports.clientip import client_ip


def ip(remote: str, xff: str | None = None) -> str:
    extra = {"HTTP_X_FORWARDED_FOR": xff} if xff is not None else {}
    return client_ip(RequestFactory().get("/", REMOTE_ADDR=remote, **extra))


def test_without_trusted_proxies_the_header_is_ignored(settings):
    settings.TRUSTED_PROXIES = []
    assert ip("203.0.113.9", "198.51.100.1") == "203.0.113.9"


def test_through_a_trusted_proxy_the_address_it_saw_is_the_client(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert ip("10.0.0.2", "198.51.100.1") == "198.51.100.1"


def test_a_spoofed_entry_left_of_the_proxys_is_ignored(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert ip("10.0.0.2", "1.2.3.4, 198.51.100.1") == "198.51.100.1"
    assert ip("10.0.0.2", "not-an-ip, 198.51.100.1") == "198.51.100.1"


def test_a_peer_that_is_not_a_trusted_proxy_cannot_choose_its_address(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert ip("203.0.113.9", "10.0.0.5, 198.51.100.1") == "203.0.113.9"


def test_a_chain_of_trusted_proxies_is_walked_from_the_right(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "192.0.2.0/24"]
    assert ip("10.0.0.2", "1.2.3.4, 198.51.100.1, 192.0.2.7") == "198.51.100.1"
    assert ip("10.0.0.2", "192.0.2.7, 10.1.1.1") == "192.0.2.7"  # all trusted: the farthest one


def test_ipv6_bracketed_ports_and_mapped_addresses(settings):
    settings.TRUSTED_PROXIES = ["::1/128", "10.0.0.0/8"]
    assert ip("::1", "[2001:db8::7]:443") == "2001:db8::7"
    assert ip("::1", "198.51.100.1:5000") == "198.51.100.1"
    assert ip("::ffff:10.0.0.2", "198.51.100.1") == "198.51.100.1"


def test_a_bad_cidr_in_the_setting_names_it(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/33"]
    with pytest.raises(ImproperlyConfigured, match="TRUSTED_PROXIES"):
        ip("10.0.0.2", "198.51.100.1")
