import os
import sys

# `python -m` puts the working directory first on sys.path; a config may name a module (env_name's
# `module:EnvId`), and that must be an installed one, never a file that happens to lie there.
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from vlmrm_cli.cli import main

main()
