"""A simulated enterprise IT helpdesk with a real HTTP API, for demos, tests and evals.

It stands in for the outside world and shares no code with ``closedloop.tools``
(or any other closedloop package): its dynamics are hidden from the agents.
Entry points: :func:`closedloop.sandbox.app.create_app`,
:class:`closedloop.sandbox.server.SandboxServer` and ``python -m closedloop.sandbox``.
"""
