"""`siro-poller demo`: the real daemon against simulators of a phone system and of Siro."""

from poller.demo.runner import DemoOutcome, run_demo
from poller.demo.scenarios import SCENARIOS, DemoCall

DEMO_KINDS = tuple(SCENARIOS)

__all__ = ["DEMO_KINDS", "DemoCall", "DemoOutcome", "run_demo"]
