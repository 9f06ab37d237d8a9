"""lockgate.net.tls: an upstream trusts the profile's CA alone; OAuth servers certifi too."""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

import certifi
import pytest
from cryptography import x509

from lockgate.net.tls import profile_ca, trust_store, upstream_trust
from tests.support.tls import issue_certs


def _subjects(context: ssl.SSLContext) -> set[str]:
    return {
        dict(item[0] for item in cert["subject"]).get("commonName", "")
        for cert in context.get_ca_certs()
    }


def test_without_a_ca_file_it_is_certifis_bundle() -> None:
    bundle = ssl.create_default_context(cafile=certifi.where())
    assert _subjects(trust_store()) == _subjects(bundle)
    assert trust_store().verify_mode == ssl.CERT_REQUIRED and trust_store().check_hostname


def test_a_ca_file_is_trusted_besides_certifi(tmp_path: Path) -> None:
    certs = issue_certs(tmp_path, x509.IPAddress(ipaddress.ip_address("127.0.0.1")), "x")
    context = trust_store(certs.ca)
    assert "lockgate test CA" in _subjects(context)
    assert _subjects(trust_store()) < _subjects(context)  # certifi's roots stay
    assert trust_store(str(certs.ca)) is context  # built once per file


def test_a_missing_ca_file_raises_and_is_not_cached(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    with pytest.raises(OSError):
        trust_store(missing)
    issue_certs(tmp_path, x509.IPAddress(ipaddress.ip_address("127.0.0.1")), "x").ca.rename(missing)
    assert "lockgate test CA" in _subjects(trust_store(missing))


def test_profile_ca_resolves_next_to_the_profile(tmp_path: Path) -> None:
    profile = tmp_path / "profiles" / "p.toml"
    assert profile_ca(None, profile) is None
    assert profile_ca("ca.pem", profile) == tmp_path / "profiles" / "ca.pem"
    assert profile_ca("/etc/ca.pem", profile) == Path("/etc/ca.pem")
    assert profile_ca("~/ca.pem", profile) == Path("~/ca.pem").expanduser()
    assert profile_ca("ca.pem", None) == Path("ca.pem")


def test_the_upstream_itself_trusts_the_profiles_ca_alone(tmp_path: Path) -> None:
    """As the gateway's proxy path does: doctor and the connect probe must not pass an
    upstream (signed by a public CA) that the gateway would refuse."""
    certs = issue_certs(tmp_path, x509.IPAddress(ipaddress.ip_address("127.0.0.1")), "x")
    assert _subjects(upstream_trust(certs.ca)) == {"lockgate test CA"}
    assert _subjects(upstream_trust()) == _subjects(trust_store())
    assert upstream_trust(certs.ca).verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(OSError):
        upstream_trust(tmp_path / "missing.pem")
