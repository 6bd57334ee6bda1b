"""Domain errors become one line on stderr and an exit code — here and nowhere else."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import typer
from typer._click.core import Context as ClickContext  # typer vendors its own click
from typer._click.exceptions import ClickException
from typer.core import TyperGroup

from mailgate.errors import ConfigError, MailgateError
from mailgate.sources.exits import EX_TEMPFAIL
from store.errors import InvalidInput, NotFound, StoreError, StoreUnavailable

EX_USAGE = 2
EX_NOTFOUND = 3
EX_NOPERM = 77  # sysexits: a held confidential ticket, answered without --confirm-identity
EX_SOFTWARE = 70
EX_CONFIG = 78

log = logging.getLogger("mailgate.cli")


def fail(message: str, code: int = 1) -> NoReturn:
    print(f"mailgate: {message}", file=sys.stderr)
    raise SystemExit(code)


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, StoreUnavailable):
        return EX_TEMPFAIL
    if isinstance(exc, ConfigError):
        return EX_CONFIG
    if isinstance(exc, NotFound):
        return EX_NOTFOUND
    if isinstance(exc, PermissionError):
        return EX_NOPERM
    if isinstance(exc, InvalidInput | ValueError):
        return EX_USAGE
    return 1


class GuardedGroup(TyperGroup):
    """The root command group: any error leaves as one readable line, never a traceback."""

    def invoke(self, ctx: ClickContext) -> Any:
        return guarded(lambda: super(GuardedGroup, self).invoke(ctx))


def guarded(entry: Callable[[], Any]) -> Any:
    try:
        return entry()
    except (typer.Exit, typer.Abort, ClickException, SystemExit):
        raise  # usage errors and exits are click's to print
    except (MailgateError, StoreError) as exc:
        fail(str(exc), exit_code_for(exc))
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as exc:
        log.debug("internal error", exc_info=True)
        # One line: a database error's text goes on with its SQL and parameters.
        first_line = next(iter(str(exc).splitlines()), "")
        fail(
            f"internal error: {type(exc).__name__}: {first_line}"
            " (run with MAILGATE_DEBUG=1 for details)",
            EX_SOFTWARE,
        )
