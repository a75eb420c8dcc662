"""flask commands from the tools (`flask batch`, `flask evaluate`), found through the `flask.commands` entry points.

The modules import only click and flask at the top, so listing the commands costs nothing; each command
imports its own stack when it runs.
"""
