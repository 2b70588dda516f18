"""Scale-out of a running simulated environment: one more node in a layer.

The platform adds the node (a fresh container booted like the others: a PostgreSQL standby clones
the primary, a MariaDB replica follows it), then raises ``onAfterServiceScaleOut`` with the new
node in ``event.response.nodes``; the caller (addon.Session) raises the event.
"""

from __future__ import annotations

from dataclasses import replace

from dbtls.sim import cluster, images, topology
from dbtls.sim.errors import NoEnvironment, SimError

#: Which node spec a new node of a layer gets, per database family.
_SPEC = {
    ("postgres", "sqldb"): topology.POSTGRES_STANDBY,
    ("postgres", "pgpool"): topology.PGPOOL,
    ("mariadb", "sqldb"): topology.MARIADB_REPLICA,
    ("mariadb", "proxy"): topology.PROXYSQL,
}


def scale_out(env: str, group: str, progress: cluster.Progress = images._stderr) -> cluster.NodeStatus:
    """Add one node to ``group`` of the running ``env``; return its status once its service is up."""
    engine = cluster.client()
    rows = [r for r in cluster.status(engine, env) if r.role != "client"]
    if not rows:
        raise NoEnvironment(env)
    first = engine.containers.get(rows[0].name)
    topo, release = first.labels.get("dbtls.topology", ""), first.labels.get("dbtls.release", "bookworm")
    family = "postgres" if topo.startswith("pg") else "mariadb"
    spec = _SPEC.get((family, group))
    if spec is None:
        raise SimError(f"cannot scale layer {group!r} of a {topo} environment")
    new_id = max(r.node_id for r in rows) + 1
    planned = [topology.Node(spec=_spec_of(r), node_id=r.node_id, env=env, is_master=r.is_master)
               for r in rows]
    planned.append(topology.Node(spec=spec, node_id=new_id, env=env, is_master=False))
    node = next(n for n in topology.replan(planned) if n.node_id == new_id)
    tags = images.ensure_images(engine, release, [spec.role], progress)
    creds = cluster.read_secrets(engine, env)
    progress(f"creating {node.container_name} ({spec.role}, {node.hostname})")
    container = cluster._create(engine, node, release, tags[spec.role], creds, topo)
    container.start()
    # Wait for the node's own boot only: a standby cloned from a TLS primary cannot start its
    # server before the add-on's scale-out handler has issued its certificate.
    cluster.wait_until(lambda: container.exec_run(["test", "-e", "/var/lib/dbtls-sim/first-boot.done"]).exit_code == 0,
                       cluster.SERVICE_DEADLINE_S, f"the first boot of {container.name}")
    if spec is topology.MARIADB_REPLICA:
        _add_proxysql_backend(engine, rows, node.short_name)
    return next(r for r in cluster.status(engine, env) if r.node_id == new_id)


def _add_proxysql_backend(engine, rows: list[cluster.NodeStatus], host: str) -> None:
    """What the platform's cluster logic does when a MariaDB replica joins: a reader row for it in
    every ProxySQL node's mysql_servers, with ProxySQL's defaults (use_ssl=0), loaded and saved."""
    sql = (f"INSERT INTO mysql_servers (hostgroup_id, hostname, port) VALUES (11, '{host}', 3306); "
           "LOAD MYSQL SERVERS TO RUNTIME; SAVE MYSQL SERVERS TO DISK;")
    for row in rows:
        if row.role != "proxysql":
            continue
        script = ('IFS=: read -r u p < /var/lib/proxysql/admin-credentials; '
                  'MYSQL_PWD="$p" mariadb --skip-ssl -h127.0.0.1 -P6032 -u"$u" -e "$1"')
        res = engine.containers.get(row.name).exec_run(["bash", "-c", script, "add-backend", sql])
        if res.exit_code != 0:
            raise SimError(f"could not add {host} to ProxySQL on {row.name}: "
                           f"{res.output.decode(errors='replace').strip()}")


def _spec_of(row: cluster.NodeStatus) -> topology.NodeSpec:
    by_role = {"postgres": (topology.POSTGRES_PRIMARY, topology.POSTGRES_STANDBY),
               "mariadb": (topology.MARIADB_PRIMARY, topology.MARIADB_REPLICA)}
    if row.role in by_role:
        primary, follower = by_role[row.role]
        return primary if row.is_master else follower
    spec = {"pgpool": topology.PGPOOL, "proxysql": topology.PROXYSQL}.get(row.role)
    if spec is None:
        raise SimError(f"unknown simulated role {row.role!r}")
    return replace(spec)
