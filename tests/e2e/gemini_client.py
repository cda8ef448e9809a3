"""Drives the official `google-genai` SDK against FlexiProxy for the Rust end-to-end tests.

usage: gemini_client.py BASE_URL API_KEY MODE REQUEST_JSON
REQUEST_JSON is {"model": …, "contents": …, "config": {…}} as `generate_content` takes them.
MODE is `generate` (models.generate_content), `stream` (models.generate_content_stream,
accumulated) or `count` (models.count_tokens).
Prints {"text": …, "thoughts": …, "function_calls": […], "finish_reason": …, "usage": …,
"chunks": N, "grounding": the last candidate's groundingMetadata or null} / {"total_tokens": N} or {"error": …, "code": …, "status": …, "message": …}.
"""

import json
import sys

from google import genai
from google.genai import errors


def summary(responses):
    text, thoughts, calls, finish, usage, grounding = "", "", [], None, None, None
    for response in responses:
        for candidate in response.candidates or []:
            finish = candidate.finish_reason.name if candidate.finish_reason else finish
            if candidate.grounding_metadata is not None:
                grounding = candidate.grounding_metadata.model_dump(mode="json", exclude_none=True)
            for part in (candidate.content.parts if candidate.content else None) or []:
                if part.function_call is not None:
                    calls.append({"id": part.function_call.id, "name": part.function_call.name,
                                  "args": part.function_call.args})
                elif part.thought:
                    thoughts += part.text or ""
                elif part.text:
                    text += part.text
        if response.usage_metadata is not None:
            usage = response.usage_metadata.model_dump(mode="json", exclude_none=True)
    return {"text": text, "thoughts": thoughts, "function_calls": calls,
            "finish_reason": finish, "usage": usage, "chunks": len(responses),
            "grounding": grounding}


def main() -> None:
    base_url, api_key, mode, request_json = sys.argv[1:5]
    request = json.loads(request_json)
    client = genai.Client(api_key=api_key,
                          http_options={"base_url": base_url, "timeout": 30_000})
    try:
        if mode == "generate":
            print(json.dumps(summary([client.models.generate_content(**request)])))
        elif mode == "stream":
            print(json.dumps(summary(list(client.models.generate_content_stream(**request)))))
        elif mode == "count":
            request.pop("config", None)
            print(json.dumps({"total_tokens": client.models.count_tokens(**request).total_tokens}))
        else:
            raise SystemExit(f"unknown mode {mode}")
    except errors.APIError as e:
        print(json.dumps({"error": type(e).__name__, "code": e.code, "status": e.status,
                          "message": e.message}))


if __name__ == "__main__":
    main()
