//! Stream translator tests (an OpenAI-compatible source's stream for an Anthropic client,
//! [`StreamTranslator`]): every stream shape from the translation reference, the
//! invariants on every output, and the split-invariance property.

use super::*;
use crate::protocol::pair::{StreamSummary, StreamTranslator};
use crate::protocol::stream_check::{Frame, accumulate, check_stream};
use proptest::prelude::*;
use serde_json::{Value, json};

fn chunk(delta: Value, finish: Option<&str>) -> String {
    let c = json!({"id":"chatcmpl-1","object":"chat.completion.chunk","model":"m",
        "choices":[{"index":0,"delta":delta,"finish_reason":finish}]});
    format!("data: {c}\n\n")
}

fn usage_chunk(prompt: u64, completion: u64) -> String {
    let c = json!({"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":prompt,"completion_tokens":completion,"total_tokens":prompt+completion}});
    format!("data: {c}\n\n")
}

fn tc(index: u32, id: Option<&str>, name: Option<&str>, args: Option<&str>) -> Value {
    let mut f = json!({});
    if let Some(n) = name {
        f["name"] = json!(n);
    }
    if let Some(a) = args {
        f["arguments"] = json!(a);
    }
    let mut c = json!({"index": index, "function": f});
    if let Some(id) = id {
        c["id"] = json!(id);
        c["type"] = json!("function");
    }
    json!({"tool_calls":[c]})
}

const DONE: &str = "data: [DONE]\n\n";

fn translator() -> StreamTranslator {
    StreamTranslator::new("msg_test", "claude-sonnet-4-5", ToolNames::default(), 100)
}

/// Runs a whole stream through in the given reads and checks the invariants.
fn run_reads(reads: &[&[u8]], mut t: StreamTranslator) -> (Vec<u8>, StreamTranslator) {
    let mut out = Vec::new();
    for r in reads {
        t.push(r, &mut out);
    }
    t.finish(&mut out);
    (out, t)
}

fn run(stream: &str) -> (Vec<Frame>, Value, StreamSummary) {
    let (out, t) = run_reads(&[stream.as_bytes()], translator());
    let frames = check_stream(&out)
        .unwrap_or_else(|e| panic!("{e}\n--- output ---\n{}", String::from_utf8_lossy(&out)));
    let message = accumulate(&frames);
    (frames, message, t.summary())
}

fn events(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .map(|f| match f.event.as_str() {
            "content_block_start" => format!(
                "start:{}",
                f.data["content_block"]["type"].as_str().unwrap()
            ),
            "content_block_delta" => format!("delta:{}", f.data["delta"]["type"].as_str().unwrap()),
            "content_block_stop" => "stop".into(),
            e => e.to_owned(),
        })
        .collect()
}

#[test]
fn plain_text_stream() {
    let s = [
        chunk(json!({"role":"assistant","content":""}), None),
        chunk(json!({"content":"Hello"}), None),
        chunk(json!({"content":", world"}), None),
        chunk(json!({}), Some("stop")),
        usage_chunk(12, 3),
        DONE.into(),
    ]
    .concat();
    let (frames, msg, summary) = run(&s);
    assert_eq!(
        events(&frames),
        vec![
            "message_start",
            "ping",
            "start:text",
            "delta:text_delta",
            "delta:text_delta",
            "stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(frames[0].data["message"]["model"], "claude-sonnet-4-5");
    assert_eq!(frames[0].data["message"]["id"], "msg_test");
    assert_eq!(msg["content"][0]["text"], "Hello, world");
    assert_eq!(msg["stop_reason"], "end_turn");
    assert_eq!(msg["usage"]["input_tokens"], 12);
    assert_eq!(msg["usage"]["output_tokens"], 3);
    assert!(summary.usage_reported);
    assert!(
        !String::from_utf8_lossy(&run_reads(&[s.as_bytes()], translator()).0).contains("[DONE]")
    );
}

#[test]
fn keep_alive_comments_become_pings() {
    let s = format!(
        ": OPENROUTER PROCESSING\n\n{}{}",
        chunk(json!({"content":"x"}), Some("stop")),
        DONE
    );
    let (frames, _, _) = run(&s);
    assert_eq!(frames.iter().filter(|f| f.event == "ping").count(), 2);
}

#[test]
fn data_without_space_and_crlf() {
    let s = "data:{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\r\n\r\ndata:{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\r\n\r\ndata:[DONE]\r\n\r\n";
    let (_, msg, _) = run(s);
    assert_eq!(msg["content"][0]["text"], "a");
}

#[test]
fn eof_without_done_ends_the_message() {
    let s = [chunk(json!({"content":"partial"}), None)].concat();
    let (frames, msg, summary) = run(&s);
    assert_eq!(frames.last().unwrap().event, "message_stop");
    assert_eq!(msg["content"][0]["text"], "partial");
    assert!(!summary.usage_reported);
    assert!(
        msg["usage"]["output_tokens"].as_u64().unwrap() > 0,
        "estimated"
    );
}

#[test]
fn usage_in_the_finish_chunk() {
    let c = json!({"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}],"usage":{"prompt_tokens":50,"completion_tokens":5}});
    let (_, msg, _) = run(&format!("data: {c}\n\n"));
    assert_eq!(msg["usage"]["input_tokens"], 50);
    assert_eq!(msg["usage"]["output_tokens"], 5);
}

#[test]
fn deepseek_cache_hit_tokens() {
    let u = json!({"choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":7,"prompt_cache_hit_tokens":800,"prompt_cache_miss_tokens":200}});
    let s = format!(
        "{}data: {u}\n\n{DONE}",
        chunk(json!({"content":"x"}), Some("stop"))
    );
    let (_, msg, _) = run(&s);
    assert_eq!(msg["usage"]["input_tokens"], 200);
    assert_eq!(msg["usage"]["cache_read_input_tokens"], 800);
    assert_eq!(msg["usage"]["cache_creation_input_tokens"], 0);
}

#[test]
fn two_parallel_tool_calls_one_after_the_other() {
    let s = [
        chunk(json!({"role":"assistant","content":null}), None),
        chunk(tc(0, Some("call_a"), Some("Bash"), Some("")), None),
        chunk(tc(0, None, None, Some("{\"command\":")), None),
        chunk(tc(0, None, None, Some("\"ls\"}")), None),
        chunk(tc(1, Some("call_b"), Some("Read"), Some("")), None),
        chunk(tc(1, None, None, Some("{\"file_path\":\"/a\"}")), None),
        chunk(json!({}), Some("tool_calls")),
        usage_chunk(10, 20),
        DONE.into(),
    ]
    .concat();
    let (_, msg, _) = run(&s);
    assert_eq!(msg["stop_reason"], "tool_use");
    let c = &msg["content"];
    assert_eq!(c.as_array().unwrap().len(), 2);
    assert_eq!(c[0]["id"], "call_a");
    assert_eq!(c[0]["name"], "Bash");
    assert_eq!(c[0]["input"], json!({"command":"ls"}));
    assert_eq!(c[1]["id"], "call_b");
    assert_eq!(c[1]["input"], json!({"file_path":"/a"}));
}

#[test]
fn interleaved_argument_fragments_of_two_calls() {
    let s = [
        chunk(tc(0, Some("call_a"), Some("Bash"), Some("{\"comm")), None),
        chunk(tc(1, Some("call_b"), Some("Read"), Some("{\"file_")), None),
        chunk(tc(0, None, None, Some("and\":\"ls\"}")), None),
        chunk(tc(1, None, None, Some("path\":\"/x\"}")), None),
        chunk(json!({}), Some("tool_calls")),
        DONE.into(),
    ]
    .concat();
    let (_, msg, _) = run(&s);
    assert_eq!(msg["content"][0]["input"], json!({"command":"ls"}));
    assert_eq!(msg["content"][1]["input"], json!({"file_path":"/x"}));
}

#[test]
fn name_and_full_arguments_in_one_chunk() {
    let s = [
        chunk(
            tc(
                0,
                Some("call_0"),
                Some("Glob"),
                Some("{\"pattern\":\"*.rs\"}"),
            ),
            None,
        ),
        chunk(
            tc(
                1,
                Some("call_1"),
                Some("Grep"),
                Some("{\"pattern\":\"fn\"}"),
            ),
            Some("tool_calls"),
        ),
    ]
    .concat();
    let (_, msg, _) = run(&s);
    assert_eq!(msg["content"][0]["input"], json!({"pattern":"*.rs"}));
    assert_eq!(msg["content"][1]["name"], "Grep");
    assert_eq!(msg["content"][1]["input"], json!({"pattern":"fn"}));
}

#[test]
fn name_arriving_after_arguments() {
    let s = [
        chunk(tc(0, Some("call_0"), None, Some("{\"a\":")), None),
        chunk(tc(0, None, None, Some("1}")), None),
        chunk(tc(0, None, Some("Late"), None), None),
        chunk(json!({}), Some("tool_calls")),
    ]
    .concat();
    let (_, msg, _) = run(&s);
    assert_eq!(msg["content"][0]["name"], "Late");
    assert_eq!(msg["content"][0]["input"], json!({"a":1}));
}

#[test]
fn provider_reusing_index_zero_with_new_ids() {
    let s = [
        chunk(
            tc(
                0,
                Some("call_1"),
                Some("Bash"),
                Some("{\"command\":\"ls\"}"),
            ),
            None,
        ),
        chunk(
            tc(
                0,
                Some("call_2"),
                Some("Bash"),
                Some("{\"command\":\"pwd\"}"),
            ),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
    ]
    .concat();
    let (_, msg, _) = run(&s);
    assert_eq!(msg["content"].as_array().unwrap().len(), 2);
    assert_eq!(msg["content"][0]["input"], json!({"command":"ls"}));
    assert_eq!(msg["content"][1]["id"], "call_2");
    assert_eq!(msg["content"][1]["input"], json!({"command":"pwd"}));
}

#[test]
fn empty_and_invalid_arguments() {
    let s = [
        chunk(tc(0, Some("call_0"), Some("NoArgs"), Some("")), None),
        chunk(
            tc(
                1,
                Some("call_1"),
                Some("Broken"),
                Some("{\"a\": \"unterminated"),
            ),
            None,
        ),
        chunk(
            tc(2, Some("call_2"), Some("Garbage"), Some("not json at all")),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
    ]
    .concat();
    let (_, msg, _) = run(&s);
    assert_eq!(msg["content"][0]["input"], json!({}));
    assert_eq!(msg["content"][1]["input"], json!({"a":"unterminated"}));
    assert_eq!(msg["content"][2]["input"], json!({}));
}

/// Found by fuzzing: whitespace streamed live as a call's only arguments must still
/// accumulate to a JSON object on the client.
#[test]
fn whitespace_only_arguments_become_an_empty_object() {
    let s = [
        chunk(tc(0, Some("call_0"), Some("Bash"), Some(" ")), None),
        chunk(json!({"content": "done"}), None),
        chunk(json!({}), Some("tool_calls")),
    ]
    .concat();
    let (_, msg, _) = run(&s);
    assert_eq!(msg["content"][0]["input"], json!({}));
}

#[test]
fn live_streamed_truncated_arguments_are_completed() {
    let s = [
        chunk(
            tc(0, Some("call_0"), Some("Write"), Some("{\"content\":\"abc")),
            None,
        ),
        chunk(json!({}), Some("length")),
    ]
    .concat();
    let (_, msg, _) = run(&s);
    assert_eq!(msg["content"][0]["input"], json!({"content":"abc"}));
    assert_eq!(msg["stop_reason"], "tool_use");
}

#[test]
fn odd_tool_ids_are_sanitized_and_missing_ones_generated() {
    let s = [
        chunk(
            tc(0, Some("functions.Bash:0"), Some("Bash"), Some("{}")),
            None,
        ),
        chunk(
            json!({"tool_calls":[{"index":1,"function":{"name":"Read","arguments":"{}"}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
    ]
    .concat();
    let (_, msg, _) = run(&s);
    assert_eq!(msg["content"][0]["id"], "functions_Bash_0");
    assert!(
        msg["content"][1]["id"]
            .as_str()
            .unwrap()
            .starts_with("toolu_")
    );
}

#[test]
fn long_tool_names_are_restored() {
    let long = format!("mcp__server__{}", "y".repeat(70));
    let mut names = ToolNames::default();
    let short = names.to_provider(&long);
    let t = StreamTranslator::new("msg_t", "m", names, 1);
    let s = chunk(
        tc(0, Some("c"), Some(&short), Some("{}")),
        Some("tool_calls"),
    );
    let (out, _) = run_reads(&[s.as_bytes()], t);
    let msg = accumulate(&check_stream(&out).unwrap());
    assert_eq!(msg["content"][0]["name"], long.as_str());
}

#[test]
fn reasoning_content_and_reasoning_become_signed_thinking() {
    for field in ["reasoning_content", "reasoning"] {
        let s = [
            chunk(json!({ field: "Let me " }), None),
            chunk(json!({ field: "think." }), None),
            chunk(json!({ field: "" , "content": "Answer"}), None),
            chunk(json!({}), Some("stop")),
        ]
        .concat();
        let (frames, msg, _) = run(&s);
        assert_eq!(msg["content"][0]["type"], "thinking", "{field}");
        assert_eq!(msg["content"][0]["thinking"], "Let me think.");
        assert!(!msg["content"][0]["signature"].as_str().unwrap().is_empty());
        assert_eq!(msg["content"][1]["text"], "Answer");
        assert!(events(&frames).contains(&"delta:signature_delta".to_owned()));
    }
}

#[test]
fn thinking_then_text_then_tools_in_one_response() {
    let s = [
        chunk(json!({"reasoning_content":"plan"}), None),
        chunk(json!({"content":"I'll run it."}), None),
        chunk(
            tc(
                0,
                Some("call_0"),
                Some("Bash"),
                Some("{\"command\":\"ls\"}"),
            ),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
        usage_chunk(5, 5),
    ]
    .concat();
    let (_, msg, _) = run(&s);
    let types: Vec<&str> = msg["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, vec!["thinking", "text", "tool_use"]);
}

#[test]
fn one_chunk_with_everything_is_split_in_order() {
    let c = json!({"choices":[{"index":0,"delta":{"reasoning_content":"r","content":"t",
        "tool_calls":[{"index":0,"id":"c1","function":{"name":"Bash","arguments":"{}"}}]},"finish_reason":"tool_calls"}]});
    let (_, msg, _) = run(&format!("data: {c}\n\n"));
    let types: Vec<&str> = msg["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, vec!["thinking", "text", "tool_use"]);
    assert_eq!(msg["stop_reason"], "tool_use");
}

#[test]
fn finish_reasons_map() {
    for (finish, stop) in [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        ("weird", "end_turn"),
    ] {
        let (_, msg, _) = run(&chunk(json!({"content":"x"}), Some(finish)));
        assert_eq!(msg["stop_reason"], stop, "{finish}");
    }
}

#[test]
fn error_mid_stream() {
    let s = format!(
        "{}data: {}\n\n{}",
        chunk(json!({"content":"part"}), None),
        json!({"error":{"message":"Rate limit reached","code":429}}),
        chunk(json!({"content":"ignored"}), None)
    );
    let (frames, _, summary) = run(&s);
    let last = frames.last().unwrap();
    assert_eq!(last.event, "error");
    assert_eq!(last.data["error"]["type"], "rate_limit_error");
    assert_eq!(last.data["error"]["message"], "Rate limit reached");
    assert!(summary.errored);
}

#[test]
fn error_in_a_chunk_that_still_has_choices() {
    // OpenRouter: `finish_reason: length`, then a chunk with an `error` *and* `choices`.
    let error_chunk = json!({"id":"gen-1","error":{"code":400,"message":"Token limit reached"},
        "choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],
        "usage":{"prompt_tokens":43,"completion_tokens":10}});
    let s = format!(
        ": OPENROUTER PROCESSING\n\n{}{}data: {error_chunk}\n\n{DONE}",
        chunk(
            json!({"role":"assistant","content":"","reasoning":"We need"}),
            None
        ),
        chunk(
            json!({"content":"","reasoning":" to answer"}),
            Some("length")
        ),
    );
    let (frames, _, summary) = run(&s);
    let last = frames.last().unwrap();
    assert_eq!(last.event, "error", "{frames:?}");
    assert_eq!(last.data["error"]["type"], "invalid_request_error");
    assert_eq!(last.data["error"]["message"], "Token limit reached");
    assert!(summary.errored);
    // An `error: null` (or `{}`) beside choices is no error.
    for nothing in [json!(null), json!({})] {
        let c = json!({"error": nothing, "choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]});
        let (_, msg, summary) = run(&format!("data: {c}\n\n{DONE}"));
        assert!(!summary.errored, "{nothing}");
        assert_eq!(msg["content"][0]["text"], "ok");
    }
}

#[test]
fn groq_tool_use_failed_after_a_200() {
    // Groq answers 200, streams reasoning, then says the model's tool call did not parse.
    let s = format!(
        "{}{}data: {}\n\n",
        chunk(
            json!({"role":"assistant","content":null,"reasoning":"Use the tool."}),
            None
        ),
        chunk(json!({"reasoning":" Now."}), None),
        json!({"error":{"message":"Failed to call a function. Please adjust your prompt.","type":"invalid_request_error","code":"tool_use_failed","failed_generation":"<|call|>"}})
    );
    let (frames, msg, summary) = run(&s);
    assert!(summary.errored);
    let last = frames.last().unwrap();
    assert_eq!(last.event, "error");
    assert_eq!(last.data["error"]["type"], "invalid_request_error");
    assert!(
        last.data["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Failed to call a function"),
        "{last:?}"
    );
    assert_eq!(msg["content"][0]["thinking"], "Use the tool. Now.");
}

#[test]
fn mistral_thinking_and_refusal_parts() {
    let think =
        |t: &str| json!({"content":[{"type":"thinking","thinking":[{"type":"text","text":t}]}]});
    let s = [
        chunk(json!({"role":"assistant","content":""}), None),
        chunk(think("Okay"), None),
        chunk(think(", the user"), None),
        chunk(json!({"content":[{"type":"text","text":"To cross"}]}), None),
        chunk(json!({"content":" safely."}), None),
        chunk(json!({"content":""}), Some("stop")),
        DONE.to_owned(),
    ]
    .concat();
    let (frames, msg, _) = run(&s);
    assert_eq!(msg["content"][0]["type"], "thinking", "{msg}");
    assert_eq!(msg["content"][0]["thinking"], "Okay, the user");
    assert_eq!(
        msg["content"][1],
        json!({"type":"text","text":"To cross safely."})
    );
    assert_eq!(msg["stop_reason"], "end_turn");
    assert!(events(&frames).contains(&"delta:thinking_delta".to_owned()));
    // A refusal, as a part or as OpenAI's own field, reaches the client as text.
    for delta in [
        json!({"content":[{"type":"refusal","refusal":"I can't help with that."}]}),
        json!({"content":null,"refusal":"I can't help with that."}),
    ] {
        let (_, msg, _) = run(&format!("{}{DONE}", chunk(delta, Some("stop"))));
        assert_eq!(
            msg["content"][0]["text"], "I can't help with that.",
            "{msg}"
        );
    }
}

#[test]
fn malformed_event_ends_with_error() {
    let s = format!(
        "{}data: {{not json\n\n",
        chunk(json!({"content":"a"}), None)
    );
    let (frames, _, _) = run(&s);
    assert_eq!(frames.last().unwrap().data["error"]["type"], "api_error");
}

#[test]
fn failure_after_start_is_a_clean_error_event() {
    let mut t = translator();
    let mut out = Vec::new();
    t.push(chunk(json!({"content":"half"}), None).as_bytes(), &mut out);
    t.fail(
        ErrorKind::Api,
        "the provider connection was reset",
        &mut out,
    );
    t.finish(&mut out);
    let frames = check_stream(&out).unwrap();
    assert_eq!(frames.last().unwrap().event, "error");
    assert!(t.is_done());
}

#[test]
fn empty_stream_is_still_a_message() {
    let (frames, msg, _) = run("");
    assert_eq!(
        events(&frames),
        vec!["message_start", "ping", "message_delta", "message_stop"]
    );
    assert_eq!(msg["content"], json!([]));
}

/// A stream that exercises every path: multi-byte text, thinking, interleaved tool calls,
/// comments, CRLF, usage after finish.
fn rich_stream() -> String {
    [
        ": keep-alive\n\n".to_owned(),
        chunk(
            json!({"role":"assistant","reasoning_content":"思考中… 🤔"}),
            None,
        ),
        chunk(json!({"content":"Grüße, мир! 👋🏽 "}), None),
        chunk(json!({"content":"日本語のテキスト"}), None),
        chunk(
            tc(0, Some("call_a"), Some("Write"), Some("{\"content\":\"ü")),
            None,
        ),
        chunk(
            tc(1, Some("call_b"), Some("Bash"), Some("{\"command\":")),
            None,
        ),
        chunk(tc(0, None, None, Some("ñ€😀\"}")), None).replace("\n\n", "\r\n\r\n"),
        chunk(tc(1, None, None, Some("\"echo ✓\"}")), None),
        chunk(json!({}), Some("tool_calls")),
        usage_chunk(321, 45),
        DONE.into(),
    ]
    .concat()
}

#[test]
fn rich_stream_is_valid() {
    let (_, msg, _) = run(&rich_stream());
    assert_eq!(msg["content"][2]["input"], json!({"content":"üñ€😀"}));
    assert_eq!(msg["content"][3]["input"], json!({"command":"echo ✓"}));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any split of the upstream bytes into reads — including inside UTF-8 characters and
    /// `\r\n` pairs — gives byte-identical output.
    #[test]
    fn any_split_gives_the_same_output(cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..40)) {
        let stream = rich_stream();
        let bytes = stream.as_bytes();
        let (whole, _) = run_reads(&[bytes], translator());
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        points.dedup();
        let mut reads = Vec::new();
        let mut last = 0;
        for p in points {
            reads.push(&bytes[last..p]);
            last = p;
        }
        reads.push(&bytes[last..]);
        let (split, _) = run_reads(&reads, translator());
        prop_assert_eq!(whole, split);
    }

    /// Byte-at-a-time reads of arbitrary chunk sequences keep the invariants.
    #[test]
    fn invariants_hold_for_generated_streams(ops in proptest::collection::vec(0u8..7, 0..30)) {
        let mut s = String::new();
        for (i, op) in ops.iter().enumerate() {
            s.push_str(&match op {
                0 => chunk(json!({"content": format!("t{i}é")}), None),
                1 => chunk(json!({"reasoning_content": format!("r{i}")}), None),
                2 => chunk(tc((i % 3) as u32, Some(&format!("id{}", i % 3)), Some("Tool"), Some("{\"k\":")), None),
                3 => chunk(tc((i % 3) as u32, None, None, Some("1}")), None),
                4 => ": ping\n\n".to_owned(),
                5 => usage_chunk(i as u64, 1),
                _ => chunk(json!({}), Some("stop")),
            });
        }
        let reads: Vec<&[u8]> = s.as_bytes().chunks(1).collect();
        let (out, _) = run_reads(&reads, translator());
        if let Err(e) = check_stream(&out) {
            return Err(TestCaseError::fail(format!("{e}\n{}", String::from_utf8_lossy(&out))));
        }
    }
}
