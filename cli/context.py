"""What every command shares: the configuration and, built on first use, the gateway."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import typer

from mailgate.app import Gateway, build_gateway
from mailgate.config import Settings, load_settings
from mailgate.logs import configure_logging


@dataclass
class CliContext:
    config: str | None
    _settings: Settings | None = None
    _gateway: Gateway | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
            configure_logging(self._settings.log)
        return self._settings

    def gateway(self) -> Gateway:
        if self._gateway is None:
            self._gateway = build_gateway(self.settings)
        return self._gateway

    def close(self) -> None:
        if self._gateway is not None:
            self._gateway.close()
            self._gateway = None


def cli_context(ctx: typer.Context) -> CliContext:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliContext)
    return obj


def setup_logging(verbose: bool) -> None:
    level = (
        logging.DEBUG
        if os.environ.get("MAILGATE_DEBUG")
        else (logging.INFO if verbose else logging.WARNING)
    )
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
