"""The simulated platform's node plans: names, groups, masters and start order."""

import pytest

from dbtls.sim import topology
from dbtls.sim.images import mirror_from_sources


def test_pg_cluster_plan_names_nodes_like_the_platform():
    nodes = topology.plan("pg-cluster", "shop")
    assert [(n.spec.role, n.spec.group) for n in nodes] == [
        ("postgres", "sqldb"), ("postgres", "sqldb"), ("pgpool", "pgpool")]
    primary, standby, pgpool = nodes
    assert primary.hostname == "node101-shop.vap.test"
    assert primary.is_master and not standby.is_master and pgpool.is_master
    assert standby.env_vars["PG_ROLE"] == "standby"
    assert standby.env_vars["PRIMARY_HOST"] == "node101"
    assert pgpool.env_vars["PG_BACKENDS"] == "node101,node102"
    assert pgpool.env_vars["MASTER_ID"] == "103"
    assert standby.env_vars["MASTER_ID"] == "101"


def test_mariadb_cluster_has_a_proxy_layer_with_writer_and_reader():
    nodes = topology.plan("mariadb-cluster", "mdb", standbys=2)
    assert [n.spec.group for n in nodes] == ["sqldb", "sqldb", "sqldb", "proxy"]
    assert nodes[-1].env_vars["MYSQL_BACKENDS"] == "node101:w,node102:r,node103:r"


def test_start_tiers_put_primaries_first_and_proxies_last():
    tiers = topology.start_tiers(topology.plan("pg-cluster", "abc"))
    assert [[n.node_id for n in t] for t in tiers] == [[101], [102], [103]]


@pytest.mark.parametrize("bad", ["A", "x", "has_underscore", "-lead", "trail-", "UPPER"])
def test_bad_environment_names_are_refused(bad):
    with pytest.raises(ValueError, match="environment name"):
        topology.plan("pg", bad)


def test_unknown_topology_is_refused():
    with pytest.raises(ValueError, match="unknown topology"):
        topology.plan("oracle", "abc")


def test_mirror_is_read_from_apt_sources_and_skips_security():
    deb822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n"
    assert mirror_from_sources(deb822) == "http://mirror.example/debian"
    one_line = "deb http://m.example/debian-security bookworm-security main\ndeb [arch=amd64] http://m.example/debian bookworm main\n"
    assert mirror_from_sources(one_line) == "http://m.example/debian"
    assert mirror_from_sources("# nothing\n") is None
