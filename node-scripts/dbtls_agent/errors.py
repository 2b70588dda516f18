"""The agent's one root exception type.

Every failure a user can act on is raised as ``AgentError`` with a one-line message; the CLI prints
it as ``dbtls-agent: error: <message>`` and exits non-zero, so the manifest can show it verbatim.
"""


class AgentError(Exception):
    """A failure with a message meant for the person who installed the add-on."""

    exit_code = 2
