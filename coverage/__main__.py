"""``python -m covplan``: the ``covplan`` command."""

from covplan.cli import main

main(prog_name="covplan")
