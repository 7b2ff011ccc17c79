"""Schemathesis hooks for the farm's contract test (tests/e2e/contract.rs).

Random ids never name anything, so without these hooks every deep path would
end in 404. The test uploads a real model and places a real order first and
passes their ids in FARM_ST_* variables; the hooks put them into the cases
Schemathesis draws. Only values that already satisfy the schema are
replaced, so negative cases (a malformed id) stay negative.
"""

import os
import random
import re

import schemathesis

MODEL_ID = os.environ.get("FARM_ST_MODEL_ID")
MODEL_FILE = os.environ.get("FARM_ST_MODEL_FILE")
IDS = {
    "order_id": os.environ.get("FARM_ST_ORDER_ID"),
    "job_id": os.environ.get("FARM_ST_JOB_ID"),
}
SHA256 = re.compile(r"^[0-9a-f]{64}$")
# A webhook target the farm under test accepts (it runs with
# FARM_WEBHOOK_ALLOW_PRIVATE=true) and can never deliver to: the discard
# port on loopback. A drawn URL is only ever a random string that fits the
# pattern; what makes a real target acceptable (a public address that
# resolves) is checked by the farm at run time, and tested on its own.
WEBHOOK_TARGET = "http://127.0.0.1:9/contract-hook"


def _webhook_target(path, body):
    if path == "/v1/webhooks" and isinstance(body, dict) and isinstance(body.get("url"), str):
        if re.match(r"^https?://", body["url"]) and len(body["url"]) <= 2048:
            body["url"] = WEBHOOK_TARGET
    return body


def _path(ctx):
    operation = getattr(ctx, "operation", None)
    return getattr(operation, "path", "")


@schemathesis.hook
def map_body(ctx, body):
    # Any bytes fit the upload's schema, but only a real model is accepted:
    # the STL, 3MF and OBJ readers are fuzzed on their own (mesh/fuzz).
    if MODEL_FILE and _path(ctx) == "/v1/models":
        with open(MODEL_FILE, "rb") as f:
            return f.read()
    if MODEL_ID and isinstance(body, dict):
        # An order's own model, and each of its parts'.
        items = body.get("items")
        for holder in [body] + (items if isinstance(items, list) else []):
            if isinstance(holder, dict) and isinstance(holder.get("model_id"), str):
                if SHA256.match(holder["model_id"]):
                    holder["model_id"] = MODEL_ID
    body = _webhook_target(_path(ctx), body)
    if isinstance(body, dict) and isinstance(body.get("order_id"), str) and IDS["order_id"]:
        if body["order_id"].strip() and random.random() < 0.5:
            body["order_id"] = IDS["order_id"]
    return body


@schemathesis.hook
def map_path_parameters(ctx, params):
    if params:
        for name, real in IDS.items():
            if real and isinstance(params.get(name), str) and random.random() < 0.7:
                params[name] = real
    return params


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    # The coverage phase builds bodies without `map_body`; the upload must
    # still carry a real model there.
    if MODEL_FILE and case.operation.path == "/v1/models" and case.method.upper() == "POST":
        with open(MODEL_FILE, "rb") as f:
            case.body = f.read()
    if case.method.upper() == "POST":
        case.body = _webhook_target(case.operation.path, case.body)
