"""``python -m unirep_port.cli``: the same as the ``unirep-port`` command."""

from unirep_port.cli import entry

entry()
