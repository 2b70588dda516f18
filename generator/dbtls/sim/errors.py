"""The simulator's root exception: one line a user can act on; the CLI prints it and exits 1."""


class SimError(Exception):
    """A failure of the simulated platform (engine missing, build failed, service never came up)."""


class NoEnvironment(SimError):
    """The named simulated environment does not exist (printed as one ``dbtls:`` line)."""

    def __init__(self, env: str) -> None:
        super().__init__(f"no simulated environment {env!r}; start one with "
                         f"'dbtls sim up pg-cluster --env {env}' (or mariadb-cluster, pg, mariadb)")
        self.env = env
