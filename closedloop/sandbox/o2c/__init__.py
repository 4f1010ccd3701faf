"""A simulated order-to-cash system with an SAP-OData-shaped API, for demos, tests and evals.

The sandbox's second domain (the first is the helpdesk in ``closedloop.sandbox``).
It stands in for an enterprise system and shares no code with ``closedloop.tools``
or any other closedloop package; its dynamics stay hidden from the agents.
Entry points: :func:`closedloop.sandbox.o2c.app.create_app`,
``SandboxServer(domain="o2c")`` and ``python -m closedloop.sandbox --domain o2c``.
See ``README.md`` beside this file for the API.
"""
