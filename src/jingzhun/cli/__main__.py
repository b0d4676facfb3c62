"""``python -m jingzhun.cli``."""

from jingzhun.cli import main

main()
