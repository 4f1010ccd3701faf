"""The helpdesk sandbox re-expressed as a ServiceNow-style Table API (same simulation).

:func:`add_servicenow_routes` mounts ``/api/now/table/...`` routes on the helpdesk
app (:func:`closedloop.sandbox.app.create_app` does so always); the connector
``closedloop/connectors/helpdesk-servicenow/`` reaches the helpdesk through them.
"""

from closedloop.sandbox.servicenow.routes import STATE_PATH, TABLES, add_servicenow_routes
from closedloop.sandbox.servicenow.tables import TableView

__all__ = ["STATE_PATH", "TABLES", "TableView", "add_servicenow_routes"]
