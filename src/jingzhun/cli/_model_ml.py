"""Model sub-commands (registered on ``jingzhun.cli._model``)."""

from __future__ import annotations
