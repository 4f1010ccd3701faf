"""closedloop chat for operations staff (Chainlit).

Run from the repository root (where ``.chainlit/config.toml``, ``chainlit.md`` and
``public/`` live):

    .venv/bin/chainlit run app.py --headless --port 8000

The chat itself lives in ``closedloop/chat`` (``closedloop.chat.app`` registers the
Chainlit callbacks when imported); see docs/chat.md for login, roles and history.
"""

from closedloop.chat import app as chat  # noqa: F401  (importing it registers the callbacks)
