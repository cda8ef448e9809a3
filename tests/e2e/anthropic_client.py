"""Drives the official `anthropic` SDK against FlexiProxy for the Rust end-to-end tests.

usage: anthropic_client.py BASE_URL API_KEY MODE REQUEST_JSON
MODE is `create` (messages.create), `stream` (messages.stream(...).get_final_message()),
or `stream-many` (REQUEST_JSON is a list; prints a list of results, one per request).
Prints one JSON object: {"message": …} on success, {"error": ClassName, "status": …,
"type": …, "message": …} when the SDK raised.
"""

import json
import sys

import anthropic


def main() -> None:
    base_url, api_key, mode, request_json = sys.argv[1:5]
    request = json.loads(request_json)
    client = anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0, timeout=30)
    if mode == "stream-many":
        print(json.dumps([run(client, "stream", r) for r in request]))
    else:
        print(json.dumps(run(client, mode, request)))


def run(client: anthropic.Anthropic, mode: str, request: dict) -> dict:
    try:
        if mode == "create":
            message = client.messages.create(**request)
        elif mode == "stream":
            request.pop("stream", None)
            with client.messages.stream(**request) as stream:
                message = stream.get_final_message()
        else:
            raise SystemExit(f"unknown mode {mode}")
        return {"message": message.model_dump(mode="json")}
    except anthropic.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        error = body.get("error", {}) if isinstance(body, dict) else {}
        return {
            "error": type(e).__name__,
            "status": e.status_code,
            "type": error.get("type"),
            "message": error.get("message"),
            "retry_after": e.response.headers.get("retry-after"),
        }
    except anthropic.APIError as e:
        # Errors inside a stream (an `error` event) arrive without a status.
        return {"error": type(e).__name__, "status": None, "message": str(e)}


if __name__ == "__main__":
    main()
