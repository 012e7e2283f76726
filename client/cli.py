"""rnnctl: the click group, its global options, and the one path by which failures leave the program."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import click

from . import errors
from .console import Console
from .context import (
    DEFAULT_ADDRESS,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_UNREACHABLE,
    AppContext,
    pass_app,
)

__all__ = ["cli", "main", "explain", "pass_app", "AppContext", "DEFAULT_ADDRESS", "EXIT_FAILURE",
           "EXIT_INTERRUPTED", "EXIT_NOT_FOUND", "EXIT_UNREACHABLE"]


def explain(err: errors.RnnError, address: str, timeout: float | None) -> tuple[str, str | None, int]:
    """(message, what to do next, exit code) for an error the user can act on."""
    text = str(err)
    if isinstance(err, errors.Unavailable):
        return (f"cannot reach the server at {address}: is `rnn-server` running?",
                "start it with `rnn-server`, or point rnnctl elsewhere with --address or RNN_ADDRESS "
                f"(server said: {err.message})", EXIT_UNREACHABLE)
    if isinstance(err, errors.DeadlineExceeded):
        limit = f"within {timeout:g}s" if timeout else "in time"
        return f"the server at {address} did not answer {limit}", "raise --timeout", EXIT_UNREACHABLE
    if isinstance(err, errors.NotFound):
        return text, "see what exists with `rnnctl models list` or `rnnctl jobs list`", EXIT_NOT_FOUND
    if isinstance(err, errors.InvalidArgument):
        return f"invalid request: {text}", None, EXIT_FAILURE
    if isinstance(err, errors.AlreadyExists):
        return text, "choose another --name, or delete the old one with `rnnctl models delete`", EXIT_FAILURE
    if isinstance(err, errors.ResourceExhausted):
        return (f"the server is busy or the request is too large: {text}", "retry later or send less",
                EXIT_FAILURE)
    if isinstance(err, errors.Unauthenticated | errors.PermissionDenied):
        return f"not allowed: {text}", "check your credentials", EXIT_FAILURE
    if isinstance(err, errors.Internal):
        rid = f" (request id {err.request_id})" if err.request_id else ""
        return (f"the server failed: {err.message}{rid}",
                "the server logged a traceback; quote the request id when reporting it", EXIT_FAILURE)
    if isinstance(err, errors.Cancelled):
        return f"cancelled: {text}", None, EXIT_FAILURE
    return f"{err.code.name.lower()}: {text}", None, EXIT_FAILURE


class RnnGroup(click.Group):
    """A click group whose commands fail through one path: `console.abort(message, code)`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except errors.RnnError as err:
            app = _app(ctx)
            message, hint, code = explain(err, app.address, app.timeout)
            if app.console.verbose:
                app.console.err.print(traceback.format_exc(), markup=False, style="dim")
            app.console.abort(message, code, hint=hint)
        except KeyboardInterrupt:
            _app(ctx).console.abort("interrupted", EXIT_INTERRUPTED)
        except BrokenPipeError:  # `rnnctl generate ... | head`: the reader left; not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise click.exceptions.Exit(0) from None
        except Exception as err:  # unexpected: a bug in rnnctl, or an environment problem
            app = _app(ctx)
            if app.console.verbose:
                app.console.err.print(traceback.format_exc(), markup=False)
            hint = None if app.console.verbose else "run again with --verbose to see the traceback"
            app.console.abort(f"unexpected error: {type(err).__name__}: {err}", EXIT_FAILURE, hint=hint)
        finally:
            if isinstance(ctx.obj, AppContext):
                ctx.obj.close()


def _app(ctx: click.Context) -> AppContext:
    if isinstance(ctx.obj, AppContext):
        return ctx.obj
    return AppContext(address=DEFAULT_ADDRESS, timeout=None, console=Console())


@click.group(cls=RnnGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--address", envvar="RNN_ADDRESS", default=DEFAULT_ADDRESS, show_default=True,
              help="host:port of the rnn server (env RNN_ADDRESS).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Deadline in seconds for each unary call (streams are not limited).")
@click.option("--token", envvar="RNN_TOKEN", help="Bearer token (env RNN_TOKEN).")
@click.option("--tls", is_flag=True, envvar="RNN_TLS", help="Connect with TLS (implied by --ca-file).")
@click.option("--ca-file", "--tls-ca", "ca_file", envvar="RNN_CA_FILE",
              type=click.Path(exists=True, dir_okay=False), help="PEM roots to trust (env RNN_CA_FILE).")
@click.option("--cert-file", "--tls-cert", "cert_file", type=click.Path(exists=True, dir_okay=False),
              help="Client certificate (mTLS).")
@click.option("--key-file", "--tls-key", "key_file", type=click.Path(exists=True, dir_okay=False),
              help="Client key (mTLS).")
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON document on stdout, for scripts.")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and debug messages.")
@click.version_option(package_name="rnn-service", prog_name="rnnctl")
@click.pass_context
def cli(ctx: click.Context, address: str, timeout: float | None, json_mode: bool, verbose: bool,
        **credentials: Any) -> None:
    """Train, inspect, query and export RNN/LSTM/GRU models on an rnn-service server."""
    if not address or ":" not in address:
        raise click.BadParameter(f"expected host:port, got {address!r}", param_hint="--address")
    console = Console(json_mode=json_mode, verbose=verbose)
    ctx.obj = AppContext(address=address, timeout=timeout, console=console,
                         credentials={k: v for k, v in credentials.items() if v not in (None, False)})


def _register() -> None:
    from .commands import export, generate, jobs, models, plot, predict, train

    for module in (train, jobs, models, predict, generate, export, plot):
        cli.add_command(module.command)


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point of `rnnctl` and `python -m client`."""
    cli.main(args=argv, prog_name="rnnctl", standalone_mode=True)

