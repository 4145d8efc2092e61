"""``python -m plait``: the ``plait`` command (agents start runs this way, with their own interpreter)."""

from plait.cli import main

if __name__ == "__main__":
    main(prog_name="plait")
