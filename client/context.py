"""What every rnnctl command receives: global options, the console, a lazily opened client; exit codes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import click

from .console import Console

DEFAULT_ADDRESS = "127.0.0.1:50051"

# Exit codes: 1 the server refused or failed the call, 2 bad usage (click's own), 3 not found,
# 4 the server could not be reached or did not answer in time, 130 interrupted (Ctrl-C).
EXIT_FAILURE, EXIT_NOT_FOUND, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 1, 3, 4, 130


@dataclass
class AppContext:
    """What every command receives: the global options, the console and a lazily opened RnnClient."""

    address: str
    timeout: float | None
    console: Console
    credentials: dict[str, Any] = field(default_factory=dict)  # token / tls / PEM files for RnnClient
    _client: Any = field(default=None, repr=False)

    @property
    def client(self):
        """The RnnClient for --address (opened on first use, closed when the command ends)."""
        if self._client is None:
            from .rnn_client import RnnClient

            self._client = RnnClient(self.address, timeout=self.timeout, **self.credentials)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None



pass_app = click.make_pass_decorator(AppContext)


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    app = ctx.find_object(AppContext)
    if value and app is not None:
        app.console.json_mode = True


def json_option(command):
    """`--json` on a command too (`rnnctl models list --json`), same as the global `rnnctl --json`."""
    return click.option("--json", "json_flag", is_flag=True, expose_value=False, callback=_set_json,
                        is_eager=True, help="Print one JSON document on stdout, for scripts.")(command)
