"""Simulated SaaS systems over real HTTP: the test bed for syncline's tests, demo and benchmarks.

``async with run_crm() as crm:`` serves a CRM-like API on a free loopback port, ``run_helpdesk``
a helpdesk-like one; ``python -m daemon.sandbox crm|helpdesk`` serves one from the command
line. ``README.md`` next to this file lists every endpoint.
"""

from daemon.sandbox.crm import Crm
from daemon.sandbox.helpdesk import Helpdesk
from daemon.sandbox.ratelimit import RateLimit
from daemon.sandbox.server import RunningSystem, run_crm, run_helpdesk, serve
from daemon.sandbox.system import SimulatedSystem
from daemon.sandbox.webhooks import WebhookTarget, sign

__all__ = [
    "Crm",
    "Helpdesk",
    "RateLimit",
    "RunningSystem",
    "SimulatedSystem",
    "WebhookTarget",
    "run_crm",
    "run_helpdesk",
    "serve",
    "sign",
]
