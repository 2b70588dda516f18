"""The simulator's root exception: one line a user can act on; the CLI prints it and exits 1."""


class SimError(Exception):
    """A failure of the simulated platform (engine missing, build failed, service never came up)."""
