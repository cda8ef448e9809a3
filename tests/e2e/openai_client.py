"""Drives the official `openai` SDK against FlexiProxy for the Rust end-to-end tests.

usage: openai_client.py BASE_URL API_KEY MODE REQUEST_JSON
MODE is `create` or `stream` (chat.completions.create with stream=True, accumulated),
or for the Responses API `responses` (responses.create), `responses_stream` (responses.create
with stream=True: every event) and `responses_helper` (the responses.stream helper, which
accumulates the final response itself).
Prints {"completion": …} / {"text": …, "reasoning": …, "tool_calls": …, "chunks": N,
"usage": …, "finish_reason": …} / {"response": …, "output_text": …, "events": […]} or
{"error": …}.
"""

import json
import sys

import openai


def main() -> None:
    base_url, api_key, mode, request_json = sys.argv[1:5]
    request = json.loads(request_json)
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30)
    try:
        if mode == "create":
            completion = client.chat.completions.create(**request)
            print(json.dumps({"completion": completion.model_dump(mode="json")}))
        elif mode == "stream":
            text, reasoning, calls, chunks, usage, finish = "", "", {}, 0, None, None
            for chunk in client.chat.completions.create(stream=True, **request):
                chunks += 1
                if chunk.usage is not None:
                    usage = chunk.usage.model_dump(mode="json")
                for choice in chunk.choices:
                    delta = choice.delta
                    text += delta.content or ""
                    reasoning += getattr(delta, "reasoning_content", None) or ""
                    finish = choice.finish_reason or finish
                    for call in delta.tool_calls or []:
                        entry = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                        entry["id"] = entry["id"] or call.id
                        if call.function is not None:
                            entry["name"] += call.function.name or ""
                            entry["arguments"] += call.function.arguments or ""
            print(json.dumps({"text": text, "reasoning": reasoning,
                              "tool_calls": [calls[i] for i in sorted(calls)],
                              "chunks": chunks, "usage": usage, "finish_reason": finish}))
        elif mode == "responses":
            response = client.responses.create(**request)
            print(json.dumps({"response": response.model_dump(mode="json"),
                              "output_text": response.output_text}))
        elif mode == "responses_stream":
            events, final = [], None
            for event in client.responses.create(stream=True, **request):
                events.append(event.model_dump(mode="json"))
                if event.type in ("response.completed", "response.incomplete", "response.failed"):
                    final = event.response
            print(json.dumps({"events": events,
                              "response": final.model_dump(mode="json") if final else None,
                              "output_text": final.output_text if final else None}))
        elif mode == "responses_helper":
            deltas = ""
            with client.responses.stream(**request) as stream:
                for event in stream:
                    if event.type == "response.output_text.delta":
                        deltas += event.delta
                final = stream.get_final_response()
            print(json.dumps({"response": final.model_dump(mode="json"),
                              "output_text": final.output_text, "deltas": deltas}))
        else:
            raise SystemExit(f"unknown mode {mode}")
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        print(json.dumps({"error": type(e).__name__, "status": e.status_code, "body": body,
                          "retry_after": e.response.headers.get("retry-after")}))
    except openai.APIError as e:
        # An error chunk inside a stream: the SDK raises it without a status.
        print(json.dumps({"error": type(e).__name__, "message": e.message}))


if __name__ == "__main__":
    main()
