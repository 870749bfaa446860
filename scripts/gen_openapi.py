#!/usr/bin/env python3
"""Generate Keyplane's OpenAPI document, ``crates/server/openapi.json``.

The document is OpenAI's Admin API operations that Keyplane serves, copied from OpenAI's
published spec together with every component they reference (and nothing else), plus
Keyplane's additions, each marked ``x-keyplane-extension: true``.

Usage (from anywhere; paths are relative to the repository root):

    python3 scripts/gen_openapi.py [REFERENCE_YAML]           # write crates/server/openapi.json
    python3 scripts/gen_openapi.py [REFERENCE_YAML] --check   # exit 1 if the file is stale

REFERENCE_YAML defaults to ``../shared/reference/openai-admin-openapi.yaml`` relative to the
repository root. With ``--check`` and the default reference missing, the check is skipped
(exit 0) so that CI can run it wherever the reference may be absent.

Only dependency: PyYAML (see scripts/requirements-openapi.txt). The output is pretty JSON with
sorted keys, so regenerating from the same reference gives byte-identical output.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any, Iterator

import yaml

REPO = Path(__file__).resolve().parent.parent
DEFAULT_REFERENCE = REPO / ".." / "shared" / "reference" / "openai-admin-openapi.yaml"
OUTPUT = REPO / "crates" / "server" / "openapi.json"

EXT = "x-keyplane-extension"
SECURITY_SCHEME = "AdminApiKeyAuth"
MAX_EXPIRES_IN_SECONDS = 31_536_000
NAME_MAX_CHARS = 256

# OpenAI operations Keyplane serves, exactly as the reference names their paths. Note that the
# reference calls the project-key id `{api_key_id}` (Keyplane's router says `{key_id}`; the
# parameter name is not on the wire, so the reference's name is kept).
OPENAI_OPERATIONS: list[tuple[str, str]] = [
    ("/organization/admin_api_keys", "get"),
    ("/organization/admin_api_keys", "post"),
    ("/organization/admin_api_keys/{key_id}", "get"),
    ("/organization/admin_api_keys/{key_id}", "delete"),
    ("/organization/projects", "get"),
    ("/organization/projects", "post"),
    ("/organization/projects/{project_id}", "get"),
    ("/organization/projects/{project_id}", "post"),
    ("/organization/projects/{project_id}/archive", "post"),
    ("/organization/projects/{project_id}/api_keys", "get"),
    ("/organization/projects/{project_id}/api_keys/{api_key_id}", "get"),
    ("/organization/projects/{project_id}/api_keys/{api_key_id}", "delete"),
    ("/organization/projects/{project_id}/service_accounts", "get"),
    ("/organization/projects/{project_id}/service_accounts", "post"),
    ("/organization/projects/{project_id}/service_accounts/{service_account_id}", "get"),
    ("/organization/projects/{project_id}/service_accounts/{service_account_id}", "post"),
    ("/organization/projects/{project_id}/service_accounts/{service_account_id}", "delete"),
    (
        "/organization/projects/{project_id}/service_accounts/{service_account_id}/api_keys",
        "post",
    ),
    ("/organization/audit_logs", "get"),
    ("/organization/users", "get"),
    ("/organization/users/{user_id}", "get"),
    ("/organization/users/{user_id}", "post"),
    ("/organization/users/{user_id}", "delete"),
    ("/organization/invites", "get"),
    ("/organization/invites", "post"),
    ("/organization/invites/{invite_id}", "get"),
    ("/organization/invites/{invite_id}", "delete"),
    ("/organization/projects/{project_id}/users", "get"),
    ("/organization/projects/{project_id}/users", "post"),
    ("/organization/projects/{project_id}/users/{user_id}", "get"),
    ("/organization/projects/{project_id}/users/{user_id}", "post"),
    ("/organization/projects/{project_id}/users/{user_id}", "delete"),
]

INVITE_ACCEPT = "/invites/accept"

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

PROJECT_KEYS = "/organization/projects/{project_id}/api_keys"
PROJECT_KEY = "/organization/projects/{project_id}/api_keys/{api_key_id}"

ROOT_SERVER = "http://127.0.0.1:8080"
API_SERVER = ROOT_SERVER + "/v1"

ERROR_ENVELOPE = (
    "The body is OpenAI's error envelope "
    '`{"error": {"message": string, "type": string, "param": string|null, '
    '"code": string|null}}` (Content-Type `application/json`). '
    "Status codes Keyplane returns: "
    "**400** bad input or a state conflict such as an archived project "
    "(`type: invalid_request_error`; `param` names the offending field or query parameter "
    "when there is one); "
    "**401** a missing, invalid, revoked or expired key (`code: invalid_api_key`), or a valid "
    "key of the wrong kind (a project or service-account key on an Admin API path) or without "
    "the needed scope, e.g. `api.management.write` (`code: null`); "
    "**404** an unknown object or URL; "
    "**405** a method the path does not support; "
    "**413** a request body over the configured limit (`code: request_too_large`); "
    "**500** an unexpected server fault (`type: server_error`, details are logged, not "
    "returned); "
    "**503** the database is unavailable (`type: server_error`, `code: service_unavailable`, "
    "with `Retry-After: 1`)."
)

DESCRIPTION = (
    "Keyplane is a self-hosted re-implementation of part of OpenAI's Administration (Admin) "
    "API. It is wire-compatible with OpenAI's Admin API: the OpenAI operations below are "
    "copied from OpenAI's published OpenAPI spec, with the same paths, parameters, request "
    "bodies and response shapes, so OpenAI's SDKs and tools work against it unchanged.\n\n"
    "Operations, schemas and properties marked `x-keyplane-extension: true` are Keyplane "
    "additions that OpenAI's API does not have (for example creating and updating project API "
    "keys, key scopes and expiry, and the health endpoints). Clients that do not know them can "
    "ignore them.\n\n"
    "Authenticate every `/v1/organization/*` request with an admin key: "
    "`Authorization: Bearer sk-admin-…`. An admin key acts as the user who owns it: keys of "
    "organization readers (and keys restricted to `api.management.read`) can read but every "
    "change is refused with 401 (`Missing scopes: api.management.write`). `/healthz`, "
    "`/readyz`, `/v1/openapi.json` and `/v1/invites/accept` need no key.\n\n"
    "Errors: " + ERROR_ENVELOPE
)


class RefError(Exception):
    """A `$ref` that does not resolve, or a reference that has changed shape."""


# ---------- loading ----------


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as strings (JSON has no date type)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _jsonable(node: Any, where: str = "#") -> Any:
    """Checks that a loaded YAML tree is plain JSON; integer map keys (status codes) become strings."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise RefError(f"{where}: map key {key!r} is not a string")
            out[str(key)] = _jsonable(value, f"{where}/{key}")
        return out
    if isinstance(node, list):
        return [_jsonable(v, f"{where}/{i}") for i, v in enumerate(node)]
    if node is None or isinstance(node, (str, bool, int, float)):
        return node
    raise RefError(f"{where}: value of type {type(node).__name__} is not JSON")


def load_reference(path: Path) -> dict:
    with path.open(encoding="utf-8") as f:
        return _jsonable(yaml.load(f, Loader=_Loader))


# ---------- $ref helpers ----------


def iter_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from iter_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from iter_refs(value)


def split_ref(ref: str) -> tuple[str, str]:
    """`#/components/<section>/<name>` -> (section, name)."""
    parts = ref.split("/")
    if len(parts) != 4 or parts[:2] != ["#", "components"]:
        raise RefError(f"unsupported $ref {ref!r} (only #/components/<section>/<name>)")
    return parts[2], parts[3].replace("~1", "/").replace("~0", "~")


def reachable(roots: Any, pool: dict[str, dict]) -> set[tuple[str, str]]:
    """Every component (section, name) that `roots` references, transitively."""
    seen: set[tuple[str, str]] = set()
    todo = list(iter_refs(roots))
    while todo:
        key = split_ref(todo.pop())
        if key in seen:
            continue
        section, name = key
        if name not in pool.get(section, {}):
            raise RefError(f"$ref #/components/{section}/{name} does not resolve")
        seen.add(key)
        todo.extend(iter_refs(pool[section][name]))
    return seen


# ---------- building blocks ----------


def extension(node: dict) -> dict:
    node[EXT] = True
    return node


def with_envelope(description: str) -> str:
    description = description.rstrip()
    if description and not description.rstrip(")").endswith((".", "!", "?")):
        description += "."
    return f"{description} {ERROR_ENVELOPE}"


def unixtime_or_null(description: str) -> dict:
    return {
        "anyOf": [{"type": "integer", "format": "unixtime"}, {"type": "null"}],
        "description": description,
    }


def scopes_or_null(description: str) -> dict:
    return {
        "anyOf": [
            {"type": "array", "items": {"type": "string"}},
            {"type": "null"},
        ],
        "description": description,
    }


def expires_in_seconds(description: str) -> dict:
    return {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_EXPIRES_IN_SECONDS,
        "example": 2592000,
        "description": description,
    }


SCOPES_NOTE = (
    "Each scope must be one Keyplane knows (OpenAI's names, e.g. `api.model.read`, "
    "`model.request`, `api.responses.write`, `api.management.read`); a `.write` scope implies "
    "the matching `.read`. An unknown scope is a 400 with `param: \"scopes\"`."
)

KEY_SCOPES = scopes_or_null(
    "Keyplane extension: `null` when the key has all permissions, otherwise the scopes it is "
    "restricted to. Always present in Keyplane's responses."
)


def add_property(schema: dict, name: str, prop: dict) -> None:
    """Adds a Keyplane property; a property the reference already defines is OpenAI's and kept."""
    props = schema.setdefault("properties", {})
    if name not in props:
        props[name] = extension(copy.deepcopy(prop))


def json_body(schema: dict, description: str, required: bool = True) -> dict:
    return {
        "description": description,
        "required": required,
        "content": {"application/json": {"schema": schema}},
    }


def json_response(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def schema_ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


# Keyplane's error responses (components/responses), all with OpenAI's ErrorResponse body.
ERROR_RESPONSES = {
    "400": ("BadRequest", "Bad input: a missing or invalid field or query parameter (named in "
            "`param`), an unknown field, or a state conflict such as an archived project."),
    "401": ("Unauthorized", "Missing, invalid, revoked or expired key (`code: invalid_api_key`), "
            "or a key of the wrong kind or without the needed scope."),
    "404": ("NotFound", "The project or API key does not exist."),
    "413": ("PayloadTooLarge", "The request body is over the configured limit."),
    "503": ("ServiceUnavailable", "The database is unavailable; retry after `Retry-After` seconds."),
}


def error_response_components() -> dict:
    out = {}
    for _status, (name, text) in ERROR_RESPONSES.items():
        out[name] = extension(json_response(with_envelope(text), schema_ref("ErrorResponse")))
    return out


def error_refs(*statuses: str) -> dict:
    return {s: {"$ref": f"#/components/responses/{ERROR_RESPONSES[s][0]}"} for s in statuses}


def path_param(name: str, description: str) -> dict:
    return {
        "name": name,
        "in": "path",
        "description": description,
        "required": True,
        "schema": {"type": "string"},
    }


# ---------- Keyplane's additions ----------


def keyplane_schemas() -> dict:
    name = {
        "type": "string",
        "minLength": 1,
        "maxLength": NAME_MAX_CHARS,
        "description": f"The name of the API key: 1 to {NAME_MAX_CHARS} characters after "
        "trimming surrounding whitespace, no control characters.",
        "example": "CI deploy key",
    }
    create = {
        "type": "object",
        "description": "Keyplane extension: the project API key create request payload.",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": name,
            "scopes": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Restrict the key to these scopes; omit for a key with all "
                "permissions. " + SCOPES_NOTE,
                "example": ["api.model.read", "model.request"],
            },
            "expires_in_seconds": expires_in_seconds(
                "The number of seconds until the API key expires. Omit this field for a key "
                "that does not expire."
            ),
            "user_id": {
                "type": "string",
                "description": "The user who owns the key: a member of the project (or an "
                "owner of the organization). Omit it for a key owned by the user of the calling "
                "admin key. A key owned by someone who later leaves the project turns "
                "`owner_project_access: inactive` and stops working.",
                "example": "user-abc",
            },
        },
    }
    update = {
        "type": "object",
        "description": "Keyplane extension: the project API key update request payload. An "
        "absent field is left as it is.",
        "additionalProperties": False,
        "properties": {
            "name": name | {"description": "The new name of the API key: 1 to "
                            f"{NAME_MAX_CHARS} characters after trimming, no control "
                            "characters."},
            "scopes": {
                "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                "description": "The key's new scopes, replacing the old ones; `null` gives the "
                "key all permissions. " + SCOPES_NOTE,
                "example": ["api.model.read"],
            },
            "expires_in_seconds": {
                "anyOf": [
                    {"type": "integer", "minimum": 1, "maximum": MAX_EXPIRES_IN_SECONDS},
                    {"type": "null"},
                ],
                "description": "Set the key to expire this many seconds from now; `null` "
                "removes the expiry.",
                "example": 86400,
            },
        },
    }
    created = {
        "allOf": [
            schema_ref("ProjectApiKey"),
            {
                "type": "object",
                "description": "The newly created project API key. The `value` field is only "
                "returned once, when the key is created.",
                "properties": {
                    "value": {
                        "type": "string",
                        "description": "The plaintext value of the API key (`sk-proj-…`). Only "
                        "shown in this response; Keyplane stores only a hash of it.",
                    }
                },
                "required": ["value"],
            },
        ],
    }
    accept = {
        "type": "object",
        "description": "Keyplane extension: accepts an invite (or the first owner's one-time "
        "setup link).",
        "additionalProperties": False,
        "required": ["token", "password"],
        "properties": {
            "token": {
                "type": "string",
                "description": "The single-use token: the last path segment of the invite's "
                "`accept_url` (`…/invite/{token}`) or of the setup link `keyplane init` prints "
                "(`…/setup/{token}`).",
                "example": "kpinv_3kTMd9Pq0vXw7Lr2bN8cYh5sUe1oAf6gJi4HzR0tWlQ",
            },
            "name": name | {
                "description": "The new member's name (1 to "
                f"{NAME_MAX_CHARS} characters). Required for an invite; for the setup link "
                "it renames the owner when given.",
                "example": "Ana Lima",
            },
            "password": {
                "type": "string",
                "minLength": 8,
                "maxLength": 1024,
                "format": "password",
                "description": "The password to sign in with (8 to 1024 characters). Stored "
                "as an Argon2id hash only.",
            },
        },
    }
    return {
        "InviteAcceptRequest": extension(accept),
        "ProjectApiKeyCreateRequest": extension(create),
        "ProjectApiKeyUpdateRequest": extension(update),
        "ProjectApiKeyCreateResponse": extension(created),
    }


def project_key_operations() -> dict[str, dict[str, dict]]:
    project = path_param("project_id", "The ID of the project.")
    key = path_param("api_key_id", "The ID of the API key.")
    security = [{SECURITY_SCHEME: []}]
    create = {
        "security": security,
        "summary": "Creates an API key in the project, owned by the user of the admin key "
        "making the request.",
        "operationId": "create-project-api-key",
        "description": "Keyplane extension (OpenAI's API has no way to create a user's project "
        "API key). Creates a project API key (`sk-proj-…`) owned by the user who owns the "
        "calling admin key (or by `user_id`, a member of the project), optionally restricted "
        "to `scopes` and expiring after `expires_in_seconds`. The plaintext key is in `value`, "
        "returned only in this response. Needs the `api.management.write` scope and an "
        "organization owner's admin key; the project must not be archived.",
        "tags": ["Projects"],
        "parameters": [project],
        "requestBody": json_body(
            schema_ref("ProjectApiKeyCreateRequest"), "The project API key create request payload."
        ),
        "responses": {
            "200": json_response(
                "Project API key created successfully.", schema_ref("ProjectApiKeyCreateResponse")
            ),
            **error_refs("400", "401", "404", "413", "503"),
        },
    }
    update = {
        "security": security,
        "summary": "Updates an API key in the project: its name, scopes or expiry.",
        "operationId": "update-project-api-key",
        "description": "Keyplane extension (OpenAI's API cannot rename, rescope or expire a "
        "project API key). Renames the key, replaces its scopes (`null` = all permissions) or "
        "sets its expiry (`expires_in_seconds: null` removes it); absent fields are left as "
        "they are. Works on user and service-account keys of the project; the change applies "
        "to the next request made with the key. Needs the `api.management.write` scope; the "
        "project must not be archived.",
        "tags": ["Projects"],
        "parameters": [project, key],
        "requestBody": json_body(
            schema_ref("ProjectApiKeyUpdateRequest"), "The project API key update request payload."
        ),
        "responses": {
            "200": json_response("Project API key updated successfully.", schema_ref("ProjectApiKey")),
            **error_refs("400", "401", "404", "413", "503"),
        },
    }
    return {PROJECT_KEYS: {"post": extension(create)}, PROJECT_KEY: {"post": extension(update)}}


def invite_accept_path_item() -> dict[str, dict]:
    accept = {
        "summary": "Accepts an invite: creates the member with a password and the invite's "
        "roles.",
        "operationId": "accept-invite",
        "description": "Keyplane extension. Public: the invite's single-use token is the "
        "credential, no API key is needed. Creates the invited user (organization role and "
        "project roles from the invite) with an Argon2id hash of `password`, marks the invite "
        "accepted, and returns the new `organization.user`. With the first owner's setup link "
        "(printed by `keyplane init` when `KEYPLANE_OWNER_PASSWORD` is not set) it sets that "
        "owner's password instead. A token that is unknown or whose invite was deleted is a "
        "404; an accepted or expired invite is a 400 with `param: \"token\"`; either way "
        "nothing is created. Of two concurrent accepts of one token, exactly one succeeds.",
        "tags": ["Invites"],
        "security": [],
        "requestBody": json_body(
            schema_ref("InviteAcceptRequest"), "The token, the new member's name and password."
        ),
        "responses": {
            "200": json_response("The invite was accepted.", schema_ref("User")),
            **error_refs("400", "404", "413", "503"),
        },
    }
    return {INVITE_ACCEPT: {"post": extension(accept)}}


def service_path_items() -> dict[str, dict]:
    def text(description: str, example: str) -> dict:
        return {
            "description": description,
            "content": {"text/plain": {"schema": {"type": "string", "example": example}}},
        }

    root = [{"url": ROOT_SERVER, "description": "Served at the server root, not under /v1."}]
    healthz = {
        "summary": "Liveness probe.",
        "operationId": "healthz",
        "description": "Keyplane extension. Answers `ok` while the process is serving HTTP; it "
        "does not touch the database. No authentication.",
        "tags": ["Keyplane"],
        "security": [],
        "responses": {"200": text("The server is alive.", "ok")},
    }
    readyz = {
        "summary": "Readiness probe.",
        "operationId": "readyz",
        "description": "Keyplane extension. Answers `ready` when the database answers, and 503 "
        "otherwise. No authentication. Its 503 body is plain text, not the JSON error envelope.",
        "tags": ["Keyplane"],
        "security": [],
        "responses": {
            "200": text("The server can serve requests.", "ready"),
            "503": text("The database is unreachable.", "database unreachable"),
        },
    }
    document = {
        "summary": "This OpenAPI document.",
        "operationId": "get-openapi-document",
        "description": "Keyplane extension. Returns this document (OpenAPI 3.1, JSON). No "
        "authentication.",
        "tags": ["Keyplane"],
        "security": [],
        "responses": {
            "200": json_response(
                "The OpenAPI document.",
                {"type": "object", "description": "An OpenAPI 3.1 document."},
            )
        },
    }
    return {
        "/healthz": {"servers": root, "get": extension(healthz)},
        "/readyz": {"servers": root, "get": extension(readyz)},
        "/openapi.json": {"get": extension(document)},
    }


def extend_components(pool: dict[str, dict]) -> None:
    """Keyplane's extra properties on OpenAI's schemas."""
    schemas = pool["schemas"]

    def schema(name: str) -> dict:
        if name not in schemas:
            raise RefError(f"reference has no components/schemas/{name}")
        return schemas[name]

    for name in ("AdminApiKey", "ProjectApiKey"):
        add_property(schema(name), "scopes", KEY_SCOPES)
    add_property(
        schema("ProjectApiKey"),
        "expires_at",
        unixtime_or_null(
            "Keyplane extension: the Unix timestamp (in seconds) of when the API key expires, "
            "or `null` if it does not expire. Always present in Keyplane's responses."
        ),
    )
    add_property(
        schema("ProjectServiceAccountCreateRequest"),
        "expires_in_seconds",
        expires_in_seconds(
            "Keyplane extension: the number of seconds until the service account's initial API "
            "key expires. Omit this field for a key that does not expire. Ignored with "
            "`create_service_account_only`."
        ),
    )
    sa_key_body = schema("CreateProjectServiceAccountApiKeyBody")
    add_property(  # OpenAI's spec already has `scopes` here; kept as OpenAI's if present.
        sa_key_body,
        "scopes",
        {
            "type": "array",
            "items": {"type": "string"},
            "description": "Restrict the key to these scopes; omit for all permissions. "
            + SCOPES_NOTE,
        },
    )
    add_property(
        sa_key_body,
        "expires_in_seconds",
        expires_in_seconds(
            "Keyplane extension: the number of seconds until the API key expires. Omit this "
            "field for a key that does not expire."
        ),
    )
    # The service-account key objects Keyplane returns carry the same two extra fields.
    for name in ("ProjectServiceAccountApiKey", "ServiceAccountApiKeyBody"):
        add_property(
            schema(name),
            "expires_at",
            unixtime_or_null(
                "Keyplane extension: the Unix timestamp (in seconds) of when the API key "
                "expires, or `null` if it does not expire."
            ),
        )
        add_property(schema(name), "scopes", KEY_SCOPES)

    add_property(
        schema("Invite"),
        "accept_url",
        {
            "type": "string",
            "description": "Keyplane extension, only in the create response: the single-use "
            "link to accept the invite, `{public URL}/invite/{token}` (7 days). Keyplane stores "
            "only a hash of the token, so the link cannot be shown again.",
            "example": "https://keyplane.example.com/invite/kpinv_3kTMd9Pq0vXw7Lr2bN8cYh5sUe1oAf6gJi4HzR0tWlQ",
        },
    )

    responses = pool.setdefault("responses", {})
    if "TooManyRequests" in responses:
        responses["TooManyRequests"]["description"] = with_envelope(
            responses["TooManyRequests"]["description"]
            + " (Declared by OpenAI's spec and kept for compatibility; Keyplane does not "
            "rate-limit and does not currently send 429.)"
        )


def extend_admin_key_create(operation: dict) -> None:
    """`scopes` on the (inline) admin key create body."""
    try:
        body = operation["requestBody"]["content"]["application/json"]["schema"]
    except KeyError as e:
        raise RefError("reference: admin key create has no inline JSON body") from e
    add_property(
        body,
        "scopes",
        {
            "type": "array",
            "items": {"type": "string"},
            "description": "Keyplane extension: restrict the admin key to these scopes, e.g. "
            "`[\"api.management.read\"]` for a read-only key; omit for all permissions. "
            + SCOPES_NOTE,
            "example": ["api.management.read"],
        },
    )


def annotate_error_responses(operation: dict) -> None:
    """Appends the envelope and status list to the description of every inline error response."""
    for status, response in operation.get("responses", {}).items():
        if status[:1] in ("4", "5") and "$ref" not in response:
            response["description"] = with_envelope(response.get("description", ""))


# ---------- the document ----------


def build(ref: dict) -> dict:
    ref_paths = ref.get("paths", {})
    pool = copy.deepcopy(ref.get("components", {}))
    for section in ("schemas", "responses"):
        pool.setdefault(section, {})

    paths: dict[str, dict] = {}
    for path, method in OPENAI_OPERATIONS:
        item = ref_paths.get(path)
        if item is None or method not in item:
            raise RefError(f"reference has no operation {method.upper()} {path}")
        out = paths.setdefault(path, {})
        for key, value in item.items():  # path-level parameters, summary, servers …
            if key not in HTTP_METHODS and key not in out:
                out[key] = copy.deepcopy(value)
        op = copy.deepcopy(item[method])
        annotate_error_responses(op)
        out[method] = op
    extend_admin_key_create(paths["/organization/admin_api_keys"]["post"])

    for path, ops in project_key_operations().items():
        for method, op in ops.items():
            if method in paths.get(path, {}):
                raise RefError(f"{method.upper()} {path} is already in the reference")
            paths.setdefault(path, {})[method] = op
    for path, item in {**service_path_items(), **invite_accept_path_item()}.items():
        if path in paths or path in ref_paths:
            raise RefError(f"{path} is already in the reference")
        paths[path] = item

    for name, schema in keyplane_schemas().items():
        if name in pool["schemas"]:
            raise RefError(f"reference already has components/schemas/{name}")
        pool["schemas"][name] = schema
    for name, response in error_response_components().items():
        if name in pool["responses"]:
            raise RefError(f"reference already has components/responses/{name}")
        pool["responses"][name] = response
    extend_components(pool)

    used = reachable(paths, pool)
    components: dict[str, dict] = {}
    for section, name in sorted(used):
        components.setdefault(section, {})[name] = pool[section][name]
    for section, name in [("schemas", n) for n in ("AdminApiKey", "ProjectApiKey")]:
        if (section, name) not in used:
            raise RefError(f"components/{section}/{name} is no longer used by the operations")

    schemes = ref.get("components", {}).get("securitySchemes", {})
    if SECURITY_SCHEME not in schemes:
        raise RefError(f"reference has no securitySchemes/{SECURITY_SCHEME}")
    scheme = copy.deepcopy(schemes[SECURITY_SCHEME])
    scheme["description"] = (
        "An admin key: `Authorization: Bearer sk-admin-…`. Project (`sk-proj-…`) and "
        "service-account (`sk-svcacct-…`) keys are rejected on the Admin API with 401."
    )
    components["securitySchemes"] = {SECURITY_SCHEME: scheme}

    used_tags = sorted({t for item in paths.values() for m in HTTP_METHODS
                        for t in item.get(m, {}).get("tags", [])})
    ref_tags = {t["name"]: t for t in ref.get("tags", [])}
    own_tags = {"Keyplane": {"name": "Keyplane", "description": "Keyplane's own service "
                             "endpoints (health, readiness, this document).", EXT: True}}
    tags = []
    for name in used_tags:
        tag = copy.deepcopy(ref_tags.get(name) or own_tags.get(name) or {"name": name})
        tags.append(tag)

    return {
        "openapi": ref.get("openapi", "3.1.0"),
        "info": {
            "title": "Keyplane Admin API",
            "version": "0.1.0",
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": API_SERVER}],
        "security": [{SECURITY_SCHEME: []}],
        "tags": tags,
        "paths": paths,
        "components": components,
    }


def render(doc: dict) -> str:
    text = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    # Every $ref in the final document must resolve inside it.
    loaded = json.loads(text)
    for ref in iter_refs(loaded):
        section, name = split_ref(ref)
        if name not in loaded.get("components", {}).get(section, {}):
            raise RefError(f"dangling $ref {ref}")
    unused = {(s, n) for s, names in loaded["components"].items() if s != "securitySchemes"
              for n in names} - reachable(loaded["paths"], loaded["components"])
    if unused:
        raise RefError(f"unused components: {sorted(unused)}")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference", nargs="?", help="OpenAI's Admin API spec (YAML); default "
                        "../shared/reference/openai-admin-openapi.yaml from the repo root")
    parser.add_argument("--check", action="store_true", help="exit 1 if "
                        "crates/server/openapi.json differs from a fresh generation")
    args = parser.parse_args(argv)

    reference = Path(args.reference) if args.reference else DEFAULT_REFERENCE
    if not reference.is_file():
        if args.check and not args.reference:
            print(f"gen_openapi: {reference} not found; drift check skipped", file=sys.stderr)
            return 0
        print(f"gen_openapi: reference spec {reference} not found", file=sys.stderr)
        return 2
    try:
        text = render(build(load_reference(reference)))
    except RefError as e:
        print(f"gen_openapi: {e}", file=sys.stderr)
        return 2

    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.is_file() else None
        if current != text:
            print(f"gen_openapi: {OUTPUT.relative_to(REPO)} is out of date; run "
                  "`python3 scripts/gen_openapi.py`", file=sys.stderr)
            return 1
        print(f"gen_openapi: {OUTPUT.relative_to(REPO)} is up to date", file=sys.stderr)
        return 0

    OUTPUT.write_text(text, encoding="utf-8")
    print(f"gen_openapi: wrote {OUTPUT.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
