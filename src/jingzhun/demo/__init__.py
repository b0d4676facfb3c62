"""The demo: bundled Online Retail sample + generated data through every stage built so far."""

from jingzhun.demo._demo import ATTRIBUTION, DemoResult, run_demo

__all__ = ["ATTRIBUTION", "DemoResult", "run_demo"]
