"""The Chainlit chat for operations staff (``app.py`` at the root imports ``closedloop.chat.app``).

Modules without Chainlit, unit-tested without a browser: ``render`` (escaped Markdown),
``logs`` (bundled logs, uploads), ``mapping`` (the column-mapping step), ``intents``
(questions to intents), ``answers`` (intents answered by tool calls), ``control``
(pending approvals, rollout status, kill switch), ``auth`` (login and roles),
``session`` (one chat's loop run), ``web`` (offline page, footer, map pages).
With Chainlit: ``app`` (callbacks), ``mining_ui``, ``loop_ui``, ``history`` (data layer).
"""
