"""The JSON Schema of the annotations, generated from the pydantic models and shipped.

``annotations.schema.json`` beside this module is the generated schema; a test
checks that it is current. Regenerate with
``python -m closedloop.tools.connect.schema``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from closedloop.tools.connect.annotations import Annotations

SCHEMA_PATH = Path(__file__).with_name("annotations.schema.json")
SCHEMA_ID = "https://closedloop.invalid/schemas/connector-annotations.json"


def annotations_json_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of an object holding any of the ``x-closedloop-*`` keys."""
    schema = Annotations.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            **schema}


def shipped_schema() -> dict[str, Any]:
    """The schema file shipped with the package."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def write_schema(path: Path = SCHEMA_PATH) -> None:
    """Write the generated schema to ``path`` (default: the shipped file)."""
    path.write_text(json.dumps(annotations_json_schema(), indent=2, sort_keys=True) + "\n",
                    encoding="utf-8")


if __name__ == "__main__":
    write_schema()
    print(f"wrote {SCHEMA_PATH}")


__all__ = ["SCHEMA_PATH", "annotations_json_schema", "shipped_schema", "write_schema"]
