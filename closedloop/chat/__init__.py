"""Helpers behind the Chainlit chat (``app.py``): rendering, log loading and loop sessions.

Nothing here imports Chainlit, so every helper can be unit-tested without a browser.
"""
