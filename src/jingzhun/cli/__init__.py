"""The ``jingzhun`` command line."""

from jingzhun.cli._app import app, main

__all__ = ["app", "main"]
