"""Print the o2c sandbox's OpenAPI document as YAML: ``python -m closedloop.sandbox.o2c.export``.

The connector ships this output as ``closedloop/connectors/o2c/openapi.yaml`` (a test
checks the two agree), the way a vendor's published spec would be saved.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from closedloop.sandbox.o2c.app import create_app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of a default o2c app (no auth)."""
    return create_app().openapi()


def openapi_yaml() -> str:
    """The OpenAPI document as YAML, keys in the app's order."""
    header = ("# OpenAPI document of the o2c sandbox, exported with\n"
              "# `python -m closedloop.sandbox.o2c.export`. Do not edit: annotate it in\n"
              "# overlay.yaml beside it.\n")
    return header + yaml.safe_dump(openapi_document(), sort_keys=False, allow_unicode=True,
                                   width=100)


if __name__ == "__main__":
    sys.stdout.write(openapi_yaml())
