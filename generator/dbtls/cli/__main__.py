"""``python -m dbtls.cli``: the same command as the ``dbtls`` entry point."""

from dbtls.cli import app

app()
