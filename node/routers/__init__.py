"""HTTP routers, one per audience: federation (public), departments, residents, admins.

Each route names the error statuses it can answer (``node.errors.error_responses``), so
that the OpenAPI document holds them with the error body's schema. The audiences' own
are here: what authentication alone can answer (``node.auth``), before the route runs.
"""

from typing import Any

# 422 with each: FastAPI documents one for the Authorization header parameter.
RESIDENT_ERRORS = (401, 422, 503)  # a bad bearer token; no identity provider configured
CLIENT_ERRORS = (401, 403, 422)  # unknown or revoked credentials; a scope missing
ADMIN_ERRORS = (401, 403, 422)  # no bearer token; not an admin's
BODY_ERRORS = (400, 413, 422)  # a body that can't be read; too large (BodyLimit); invalid


def form_body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads an application/x-www-form-urlencoded body
    itself (OAuth's endpoints, a browser's forms): each property a string, or the schema
    given for it."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            name: {"type": "string", **schema}
                            for name, schema in properties.items()
                        },
                        "required": required,
                    }
                }
            },
        }
    }
