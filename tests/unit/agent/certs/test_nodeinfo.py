"""Node facts from fixture text: names and addresses that end up in server certificate SANs."""

from dbtls_agent.certs import nodeinfo

IP_ADDR = """\
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
1: lo    inet6 ::1/128 scope host \\       valid_lft forever preferred_lft forever
2: venet0    inet 10.100.2.15/32 scope global venet0\\       valid_lft forever preferred_lft forever
2: venet0    inet 192.0.2.44/24 brd 192.0.2.255 scope global venet0:0\\       valid_lft forever preferred_lft forever
2: venet0    inet6 2001:db8:0:0::1f/64 scope global \\       valid_lft forever preferred_lft forever
2: venet0    inet6 fe80::1%venet0/64 scope link \\       valid_lft forever preferred_lft forever
"""

FIB_TRIE = """\
Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 10.100.2.0/24 2 0 2
        |-- 10.100.2.0
           /24 link UNICAST
        |-- 10.100.2.15
           /32 host LOCAL
     +-- 127.0.0.0/8 2 0 2
        |-- 127.0.0.1
           /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
        |-- 10.100.2.15
           /32 host LOCAL
"""

IF_INET6 = """\
00000000000000000000000000000001 01 80 10 80       lo
20010db800000000000000000000001f 02 40 00 80   venet0
fe800000000000000000000000000001 02 40 20 80   venet0
"""


def test_parse_ip_addr():
    assert nodeinfo.parse_ip_addr(IP_ADDR) == ["10.100.2.15", "192.0.2.44", "2001:db8::1f"]


def test_parse_fib_trie():
    assert nodeinfo.parse_fib_trie(FIB_TRIE) == ["10.100.2.15"]


def test_parse_if_inet6():
    assert nodeinfo.parse_if_inet6(IF_INET6) == ["2001:db8::1f"]


def test_local_addresses_fallback_without_ip_command():
    files = {"/proc/net/fib_trie": FIB_TRIE, "/proc/net/if_inet6": IF_INET6}
    assert nodeinfo.local_addresses(lambda argv: None, files.get) == ["10.100.2.15", "2001:db8::1f"]


def test_env_domain():
    assert nodeinfo.env_domain_from_fqdn("node1234-env-5678.example-cloud.com") == "env-5678.example-cloud.com"
    assert nodeinfo.env_domain_from_fqdn("Node7-Shop.Example.COM.") == "shop.example.com"
    assert nodeinfo.env_domain_from_fqdn("db1.example.com") is None
    assert nodeinfo.env_domain_from_fqdn("node12-env") is None


def test_parse_env_file():
    text = "# comment\nCOMPUTE_TYPE=postgres\nexport COMPUTE_TYPE_VERSION='15.4'\nX=\"a b\"\nY=1 # note\nnot a line\n"
    assert nodeinfo.parse_env_file(text) == {
        "COMPUTE_TYPE": "postgres", "COMPUTE_TYPE_VERSION": "15.4", "X": "a b", "Y": "1",
    }


def test_collect_and_san_defaults(monkeypatch):
    monkeypatch.setattr(nodeinfo, "host_names", lambda: {"hostname": "node12", "fqdn": "node12-env.example.com"})
    files = {"/etc/jelastic/metainf.conf": "COMPUTE_TYPE=postgres\nSECRET_PASSWORD=x\n"}
    info = nodeinfo.collect(lambda argv: IP_ADDR, files.get)
    assert info["env_domain"] == "env.example.com" and info["env_name"] == "env"
    assert info["compute_type"] == "postgres" and "SECRET_PASSWORD" not in str(info)
    assert nodeinfo.server_san_defaults(info) == [
        "DNS:node12", "DNS:node12-env.example.com", "DNS:env.example.com",
        "IP:10.100.2.15", "IP:192.0.2.44", "IP:2001:db8::1f",
    ]


def test_collect_on_this_machine():
    info = nodeinfo.collect()
    assert info["hostname"] and all(not a.startswith("127.") and a != "::1" for a in info["addresses"])
