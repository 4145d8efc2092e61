"""Reject a plugin name that would not make a valid distribution and module name."""

import keyword
import re
import sys

NAME = "{{ cookiecutter.plugin_name }}"
MODULE = "{{ cookiecutter.__module_name }}"
PATTERN = r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$"

if not re.match(PATTERN, NAME) or keyword.iskeyword(NAME) or not MODULE.isidentifier():
    sys.stderr.write(
        f"ERROR: {NAME!r} is not a valid plugin name: use lowercase letters and digits, starting with a "
        "letter, with single '-' or '_' between words (e.g. 'slack' or 'my-alerts'). It becomes the "
        f"distribution 'plait-<name>' and the module 'plait_<name>'.\n"
    )
    sys.exit(1)
if NAME.startswith("plait"):
    sys.stderr.write(
        f"ERROR: plugin name {NAME!r} starts with 'plait'; give only the short name (e.g. 'slack' for "
        "plait-slack): the template adds the prefix.\n"
    )
    sys.exit(1)
