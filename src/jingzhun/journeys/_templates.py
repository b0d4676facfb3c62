"""Ready journeys shipped with jingzhun (``templates/*.yml`` in this package) and the message
templates they use (``templates/messages/*.yml``); copy them into a project to start from.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent / "templates"
TEMPLATES = ("welcome_series", "abandoned_cart", "birthday", "dormant_comeback")


def template_files() -> dict[str, Path]:
    """Every shipped file by its project-relative target: ``journeys/NAME.yml`` for the
    journeys, ``templates/NAME.yml`` for their messages.
    """
    out = {f"journeys/{name}.yml": HERE / f"{name}.yml" for name in TEMPLATES}
    for path in sorted((HERE / "messages").glob("*.yml")):
        out[f"templates/{path.name}"] = path
    return out
