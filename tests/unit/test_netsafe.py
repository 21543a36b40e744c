"""URL checks against SSRF (:mod:`mwingest.checks.netsafe`): addresses, spellings, schemes, allow-list
(the fetch itself: ``test_netsafe_fetch.py``).

Network rule for this file: private, link-local and public addresses are only ever *checked*
(``address_problem``, or ``check_url`` with a fake resolver): nothing here opens a connection to
them. The loopback spellings go through the system resolver, which reads numeric hosts and
``localhost`` without sending a packet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from mwingest.checks.netsafe import (
    ENV_ALLOW_HOSTS,
    AllowList,
    UnsafeURLError,
    address_problem,
    check_url,
    system_resolver,
)

# --- addresses -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("address", "kind"), [
    ("127.0.0.1", "loopback"), ("127.255.255.254", "loopback"), ("::1", "loopback"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"), ("fe80::1%eth0", "link-local"),
    ("10.0.0.1", "private"), ("10.255.255.255", "private"), ("172.16.0.1", "private"),
    ("172.31.255.254", "private"), ("192.168.1.1", "private"), ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"), ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
    ("100.64.0.1", "non-global"), ("100.127.255.254", "non-global"),  # CGNAT
    ("192.0.2.10", "private"), ("198.18.0.1", "private"), ("0.1.2.3", "private"),
    ("2001:db8::1", "private"),
    # IPv6 spellings of IPv4 addresses are judged by the IPv4 address they carry.
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:169.254.169.254", "link-local"),
    ("::ffff:10.1.2.3", "private"), ("2002:7f00:1::", "loopback"), ("64:ff9b::7f00:1", "loopback"),
    ("64:ff9b::a9fe:a9fe", "link-local"),
])
def test_non_public_addresses_are_refused_naming_why(address, kind):
    problem = address_problem(address)

    assert problem is not None and problem.startswith(kind), problem


@pytest.mark.parametrize("address", [
    "93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001::200e",
    "::ffff:93.184.216.34", "64:ff9b::808:808",
])
def test_public_addresses_pass(address):
    assert address_problem(address) is None


# --- loopback in every spelling, through the real resolver (no packet leaves) --------------------

@pytest.mark.parametrize("host", [
    "127.0.0.1", "localhost", "LOCALHOST.", "[::1]", "2130706433", "0x7f.1", "0x7f000001",
    "017700000001", "127.1", "[::ffff:127.0.0.1]", "0.0.0.0", "0", "[::]", "[0:0:0:0:0:0:0:1]",
])
def test_every_loopback_spelling_is_refused(host):
    with pytest.raises(UnsafeURLError, match="loopback|unspecified"):
        check_url(f"http://{host}:8181/x.png")


def test_a_refusal_says_how_to_allow_the_host():
    with pytest.raises(UnsafeURLError) as caught:
        check_url("http://127.0.0.1:8181/x.png")

    assert "--allow-host" in str(caught.value) and ENV_ALLOW_HOSTS in str(caught.value)


def test_an_unresolvable_host_is_refused_not_raised_raw():
    with pytest.raises(UnsafeURLError, match="cannot resolve"):
        system_resolver("files\x00.example.org", 80)  # NUL: refused before any lookup


# --- names through a fake resolver -----------------------------------------------------------------

@dataclass
class FakeDNS:
    """A resolver from a table; records every lookup (so tests see what was resolved)."""

    table: dict[str, list[str]]
    asked: list[tuple[str, int]] = field(default_factory=list)

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        return list(self.table.get(host.lower(), []))


DNS = {
    "media.example.org": ["93.184.216.34"],
    "v6.example.org": ["2606:4700:4700::1111"],
    "both.example.org": ["93.184.216.34", "2606:4700:4700::1111"],
    "split.example.org": ["93.184.216.34", "10.0.0.5"],  # one public, one private: refused
    "metadata.example.org": ["169.254.169.254"],
    "intranet.example.org": ["192.168.10.20"],
    "mapped.example.org": ["::ffff:10.0.0.1"],
    "cgnat.example.org": ["100.64.3.4"],
    "files.lab.internal": ["10.20.30.40"],
}


@pytest.mark.parametrize("url", [
    "http://media.example.org/a.png", "https://media.example.org/a.png?x=1#frag",
    "HTTPS://MEDIA.example.org:8443/a.png", "http://v6.example.org/a.png",
    "http://both.example.org/a.png",
])
def test_public_names_pass_with_the_addresses_that_were_checked(url):
    dns = FakeDNS(DNS)

    checked = check_url(url, resolver=dns)

    assert checked.addresses == tuple(DNS[checked.host.lower()])
    assert not checked.allowed_by_list
    assert dns.asked == [(checked.host, checked.port)]


@pytest.mark.parametrize(("url", "why"), [
    ("http://split.example.org/a.png", "private address 10.0.0.5"),
    ("http://metadata.example.org/latest/meta-data/", "link-local address 169.254.169.254"),
    ("http://intranet.example.org/a.png", "private address 192.168.10.20"),
    ("http://mapped.example.org/a.png", "private address 10.0.0.1"),
    ("http://cgnat.example.org/a.png", "non-global address 100.64.3.4"),
    ("http://nowhere.example.org/a.png", "resolves to no address"),
])
def test_names_leading_to_non_public_addresses_are_refused(url, why):
    with pytest.raises(UnsafeURLError, match=why):
        check_url(url, resolver=FakeDNS(DNS))


@pytest.mark.parametrize("host", [
    "169.254.169.254", "10.0.0.1", "172.16.0.1", "192.168.0.1", "[fc00::1]", "[fe80::1]",
    "224.0.0.1", "[ff02::1]", "240.0.0.1", "100.64.0.1",
])
def test_literal_non_public_addresses_are_refused(host):
    literal = FakeDNS({host.strip("[]"): [host.strip("[]")]})

    with pytest.raises(UnsafeURLError, match="forbidden"):
        check_url(f"http://{host}/x.png", resolver=literal)


# --- schemes and URL shapes: refused before any lookup ---------------------------------------------

@pytest.mark.parametrize(("url", "why"), [
    ("file:///etc/passwd", "not 'file'"),
    ("ftp://media.example.org/a.png", "not 'ftp'"),
    ("gopher://media.example.org:70/_x", "not 'gopher'"),
    ("javascript:alert(1)", "not 'javascript'"),
    ("data:image/png;base64,iVBORw0KGgo=", "not 'data'"),
    ("//media.example.org/a.png", "not 'none'"),  # protocol-relative
    ("media.example.org/a.png", "not 'none'"),
    ("http:///a.png", "no host"),
    ("http://:80/a.png", "no host"),
    ("http://user:secret@media.example.org/a.png", "credentials"),
    ("http://user@media.example.org/a.png", "credentials"),
    ("http://media.example.org:99999/a.png", "malformed"),
    ("http://[::1/a.png", "malformed"),
])
def test_other_schemes_and_odd_urls_are_refused_without_a_lookup(url, why):
    dns = FakeDNS(DNS)

    with pytest.raises(UnsafeURLError, match=why) as caught:
        check_url(url, resolver=dns)

    assert dns.asked == []
    assert "secret" not in str(caught.value)


# --- the allow-list ---------------------------------------------------------------------------------

LOCAL = FakeDNS({"files.lab.internal": ["10.20.30.40"], "a.lab.internal": ["10.1.1.1"],
                 "lab.internal": ["10.1.1.2"], "evillab.internal": ["10.1.1.3"],
                 "127.0.0.1": ["127.0.0.1"], "::1": ["::1"], "localhost": ["127.0.0.1"]})


@pytest.mark.parametrize(("entries", "url", "allowed"), [
    (["files.lab.internal"], "http://files.lab.internal/a.png", True),
    (["files.lab.internal"], "http://files.lab.internal:9443/a.png", True),  # any port
    (["FILES.Lab.Internal."], "http://files.lab.internal/a.png", True),
    (["files.lab.internal:8080"], "http://files.lab.internal:8080/a.png", True),
    (["files.lab.internal:8080"], "http://files.lab.internal:8081/a.png", False),
    (["files.lab.internal:80"], "http://files.lab.internal/a.png", True),  # default port
    (["files.lab.internal:80"], "https://files.lab.internal/a.png", False),  # 443
    (["*.lab.internal"], "http://a.lab.internal/a.png", True),
    (["*.lab.internal"], "http://files.lab.internal/a.png", True),
    (["*.lab.internal"], "http://lab.internal/a.png", False),  # subdomains only
    (["*.lab.internal"], "http://evillab.internal/a.png", False),
    (["*.lab.internal:8080"], "http://a.lab.internal:8080/a.png", True),
    (["*.lab.internal:8080"], "http://a.lab.internal:9090/a.png", False),
    (["127.0.0.1:7001"], "http://127.0.0.1:7001/a.png", True),
    (["127.0.0.1:7001"], "http://localhost:7001/a.png", False),  # names match as written
    (["::1"], "http://[::1]:7001/a.png", True),
    (["[::1]"], "http://[::1]:7001/a.png", True),
    (["[::1]:7001"], "http://[::1]:7001/a.png", True),
    (["[::1]:7001"], "http://[::1]:7002/a.png", False),
    (["[0:0::1]:7001"], "http://[::1]:7001/a.png", True),  # IPv6 compared in canonical form
    (["other.lab.internal, files.lab.internal:8080"], "http://files.lab.internal:8080/a", True),
    ([], "http://files.lab.internal/a.png", False),
])
def test_allow_list_semantics(entries, url, allowed):
    allow = AllowList.parse(entries, env=False)

    if allowed:
        assert check_url(url, allow, LOCAL).allowed_by_list
    else:
        with pytest.raises(UnsafeURLError):
            check_url(url, allow, LOCAL)


def test_allow_list_reads_a_comma_string_and_the_environment(monkeypatch):
    monkeypatch.setenv(ENV_ALLOW_HOSTS, " files.lab.internal:8080 ,*.cdn.lab.internal")

    allow = AllowList.parse("127.0.0.1:7001, [::1]:7002")

    assert allow.entries == ("*.cdn.lab.internal", "127.0.0.1:7001", "[::1]:7002",
                             "files.lab.internal:8080")
    assert AllowList.parse("127.0.0.1:7001", env=False).entries == ("127.0.0.1:7001",)
    monkeypatch.delenv(ENV_ALLOW_HOSTS)
    assert AllowList.parse().entries == ()


@pytest.mark.parametrize("entry", ["files.lab.internal:http", "127.0.0.1:0", "[::1]:70000",
                                   "host:"])
def test_a_malformed_allow_list_port_is_an_error_not_any_port(entry):
    with pytest.raises(ValueError, match="port"):
        AllowList.parse([entry], env=False)


def test_an_allowed_name_does_not_open_other_names_on_the_same_address():
    allow = AllowList.parse(["files.lab.internal"], env=False)
    dns = FakeDNS({"files.lab.internal": ["10.20.30.40"], "alias.example.org": ["10.20.30.40"]})

    with pytest.raises(UnsafeURLError, match="10.20.30.40"):
        check_url("http://alias.example.org/a.png", allow, dns)


# --- fetching: only loopback servers, reached through the allow-list -------------------------------
