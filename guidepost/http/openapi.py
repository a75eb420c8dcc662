"""GET /openapi.json: the contract in openapi.yaml, with this worker's limits, languages and key requirement filled in."""
from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path

import yaml
from flask import Blueprint, Flask, current_app, jsonify

from ..scene import MAX_LABEL_CHARS

bp = Blueprint("openapi", __name__)
SPEC_FILE = Path(__file__).with_name("openapi.yaml")
_SECURITY = [{"ApiKey": []}, {"Bearer": []}]


@cache
def contract() -> dict:
    """openapi.yaml as written (read once)."""
    return yaml.safe_load(SPEC_FILE.read_text())


def openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: /static/<path:filename> → /static/{filename}."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def served_paths(app: Flask) -> set[str]:
    """The OpenAPI paths of every route the app serves."""
    return {openapi_path(rule.rule) for rule in app.url_map.iter_rules()}


def describe(app: Flask) -> dict:
    """The contract for this app: only the routes it serves, its limits and whether each operation needs a key."""
    spec = copy.deepcopy(contract())
    extension = app.extensions["guidepost"]
    settings, limits, prompts = extension.settings, extension.limits, extension.prompts
    served = served_paths(app)
    spec["paths"] = {path: item for path, item in spec["paths"].items() if path in served}
    for item in spec["paths"].values():
        for operation in item.values():
            needs_key = operation.pop("x-needs-api-key", False)
            if settings.api_key_set and (needs_key is True or (needs_key == "metrics" and not settings.metrics_public)):
                operation["security"] = _SECURITY
    schemas = spec["components"]["schemas"]
    fields = schemas["Fields"]["properties"]
    fields["text"]["maxLength"] = limits.max_text_chars
    fields["lang"]["enum"] += list(prompts.languages)
    fields["task"]["enum"] += list(prompts.tasks)
    # One flat object per media type (schemathesis reads a form's per-part encodings only from a plain object); a
    # media type's own spelling of a field wins.
    form, body = schemas["ProcessForm"], schemas["ProcessJson"]
    form["properties"] = {**copy.deepcopy(fields), **form["properties"]}
    body["properties"] = {**{name: {"anyOf": [field, {"type": "null"}]} for name, field in copy.deepcopy(fields).items()},
                          **body["properties"]}
    form, body = form["properties"], body["properties"]
    for objects in (form["objects"], body["objects"]["oneOf"][0]):
        objects.update(maxItems=limits.max_objects)
        objects["items"]["maxLength"] = MAX_LABEL_CHARS
    body["image"]["oneOf"][1]["maxItems"] = limits.max_images
    if "/v1/chat/completions" in spec["paths"]:
        _describe_chat(schemas, fields, app)
    return spec


def _describe_chat(schemas: dict, fields: dict, app: Flask) -> None:
    """The chat request's model names and its `guidepost` object (/process's fields but text and stream)."""
    from .openai_api import model_names  # the /v1 blueprint's own list, which needs an app context

    with app.app_context():
        schemas["ChatRequest"]["properties"]["model"]["enum"] = model_names()
    extra = {name: {"anyOf": [field, {"type": "null"}]} for name, field in copy.deepcopy(fields).items()
             if name != "text"}
    extra["objects"] = copy.deepcopy(schemas["ProcessJson"]["properties"]["objects"])
    schemas["ChatRequest"]["properties"]["guidepost"]["properties"] = extra


@bp.get("/openapi.json")
def openapi_json():
    """This description, for this worker."""
    return jsonify(describe(current_app))
