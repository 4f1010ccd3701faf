"""The service package: REST API (``app.create_app``), Adaptive Cards (``cards``),
the Teams-style approval bot (``teams``) and ``serve()`` (``closedloop.api.__main__``)."""
