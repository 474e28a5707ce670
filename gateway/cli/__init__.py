"""``oauth2-gateway <command>``: argument parsing and exit codes only.

Exit codes: 0 success, 1 invalid config or failed operation, 2 usage error (argparse).

``parser`` builds the argument parser and holds ``main``; the commands live by concern in
``config_commands`` (check, routes, explain), ``run_command`` (run), ``token_command``
(development tokens) and ``admin_commands`` (revoke, unrevoke, revocations through the admin
API); ``common`` holds the helpers they share.
"""

from __future__ import annotations

from .parser import DEFAULT_CONFIG, build_parser, main
from .run_command import event_loop_runner

__all__ = ["DEFAULT_CONFIG", "build_parser", "event_loop_runner", "main"]
