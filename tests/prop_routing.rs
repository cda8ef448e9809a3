//! Property tests of `routing`: route matching, features and conversation ids on arbitrary
//! request bodies of every client protocol, and key pools driven by arbitrary sequences of
//! picks, provider outcomes, shared state and time. They never panic; a pool never picks a
//! disabled, cooling or open-breaker key while a usable one exists, and it says "unavailable"
//! only when none does; `sticky` is stable while nothing changes; in-flight counts add up.
//! `FLEXIPROXY_FUZZ_CASES=N` sets every property's case count.

use flexiproxy::protocol::{anthropic, gemini, openai_chat, responses};
use flexiproxy::routing::{
    Balance, ConversationHints, Health, HealthConfig, KeyLease, KeyPool, Outcome, Pick, PoolKey,
    RequestFeatures, RouteWhen, SharedState, body_hints, conversation_id, first_match,
};
use proptest::prelude::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[path = "common/fuzz_support.rs"]
mod fuzz_support;
use fuzz_support::{check, config, mutate};

/// Requests of every protocol with images, tool results, reasoning and ids in them.
fn seeds() -> Vec<(u8, Vec<u8>)> {
    let anthropic = json!({"model": "claude-haiku-4-5", "max_tokens": 10,
        "metadata": {"user_id": "{\"device_id\":\"d\",\"account_uuid\":\"\",\"session_id\":\"s-1\"}"},
        "thinking": {"type": "adaptive"}, "output_config": {"effort": "high"},
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=1;\nsys"}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Read", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JV"}}]}]}]});
    let chat = json!({"model": "gpt-5", "reasoning_effort": "high", "user": "u", "prompt_cache_key": "pk",
        "messages": [{"role": "system", "content": "s"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]}]});
    let responses = json!({"model": "gpt-5", "reasoning": {"effort": "minimal"}, "prompt_cache_key": "pk",
        "safety_identifier": "u", "input": [{"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "x"}, {"type": "input_image", "image_url": "https://x/y.png"}]}]});
    let gemini = json!({"systemInstruction": {"parts": [{"text": "s"}]},
        "generationConfig": {"thinkingConfig": {"thinkingBudget": -1}},
        "contents": [{"role": "user", "parts": [{"text": "x"}, {"inlineData": {"mimeType": "image/png", "data": "AA"}}]}]});
    [anthropic, chat, responses, gemini]
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u8, serde_json::to_vec(v).unwrap()))
        .collect()
}

fn routes() -> Vec<flexiproxy::routing::CompiledWhen> {
    [
        r#"{ model: "claude-*haiku*" }"#,
        "{ images: true, thinking: false }",
        "{ min_input_tokens: 5000 }",
        "{ thinking: true }",
        r#"{ model: "gpt-5{,-mini}", images: false }"#,
    ]
    .iter()
    .map(|y| {
        serde_yaml_ng::from_str::<RouteWhen>(y)
            .unwrap()
            .compile()
            .unwrap()
    })
    .collect()
}

/// Decodes `body` as protocol `which` and runs everything routing does with a request.
fn route(which: u8, body: &[u8]) -> Result<(), String> {
    let routes = routes();
    let hints = body_hints(body);
    let run = |c: &flexiproxy::protocol::pivot::Conversation<'_>| {
        let f = RequestFeatures::of(c).with_hints(&hints);
        if first_match(&routes, &f).is_some_and(|i| i >= routes.len()) {
            return Err("route index out of range".to_owned());
        }
        // The cheap bound never contradicts the count.
        let n = f.input_tokens();
        if !f.input_tokens_at_least(n) || f.input_tokens_at_least(n + 1) {
            return Err(format!("input_tokens_at_least disagrees with {n}"));
        }
        let ids = ConversationHints::default().with_body(&hints);
        if conversation_id(c, &ids) != conversation_id(c, &ids) {
            return Err("conversation id not deterministic".to_owned());
        }
        Ok(())
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return Ok(());
    };
    match which % 4 {
        0 => anthropic::decode_request::decode_request(text)
            .ok()
            .map_or(Ok(()), |c| run(&c)),
        1 => openai_chat::decode_request::decode_request(body)
            .ok()
            .map_or(Ok(()), |c| run(&c)),
        2 => responses::decode_request::decode_request(text, None)
            .ok()
            .map_or(Ok(()), |c| run(&c)),
        _ => gemini::decode_request::decode_request(text, "models/g", false, None)
            .ok()
            .map_or(Ok(()), |c| run(&c)),
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn routing_arbitrary_bytes_never_panics(which in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..300)) {
        check(route(which, &body))?;
    }

    #[test]
    fn routing_mutated_requests_never_panics(
        seed in any::<prop::sample::Index>(),
        ops in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..12),
    ) {
        let seeds = seeds();
        let (which, body) = &seeds[seed.index(seeds.len())];
        check(route(*which, body))?;
        check(route(*which, &mutate(body, &ops)))?;
    }

    #[test]
    fn arbitrary_conditions_compile_or_refuse(
        model in proptest::option::of("[a-zA-Z0-9*?{},\\[\\]/.-]{0,12}"),
        images in proptest::option::of(any::<bool>()),
        min_input_tokens in proptest::option::of(0u64..200),
        thinking in proptest::option::of(any::<bool>()),
        request in ("[a-zA-Z0-9/.-]{0,16}", any::<bool>(), any::<bool>(), 0u64..300),
    ) {
        let when = RouteWhen { model, images, min_input_tokens, thinking };
        let yaml = serde_yaml_ng::to_string(&when).unwrap();
        prop_assert_eq!(serde_yaml_ng::from_str::<RouteWhen>(&yaml).unwrap(), when.clone());
        if let Ok(compiled) = when.compile() {
            let f = RequestFeatures::new(&request.0, request.1, request.2, request.3);
            let hit = compiled.matches(&f);
            // Each condition that is set must hold on a match.
            if hit {
                prop_assert!(when.images.is_none_or(|w| w == request.1));
                prop_assert!(when.thinking.is_none_or(|w| w == request.2));
                prop_assert!(when.min_input_tokens.is_none_or(|m| request.3 >= m));
            }
        } else {
            prop_assert!(when.validate().is_err());
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Pick {
        conversation: u64,
        exclude: Vec<usize>,
    },
    Report {
        key: usize,
        outcome: Outcome,
    },
    /// Ends the oldest lease, reporting its outcome through it.
    Finish(Outcome),
    /// Ends the newest lease without an outcome (the client went away).
    Abandon,
    Share {
        key: usize,
        state: u8,
        secs: u64,
    },
    Advance(u64),
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        3 => Just(Outcome::Success),
        1 => (400u16..404).prop_map(Outcome::Unauthorized),
        2 => proptest::option::of(0u64..40).prop_map(|s| Outcome::RateLimited(s.map(Duration::from_secs))),
        4 => Just(Outcome::Failure),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..8, proptest::collection::vec(0usize..9, 0..3))
            .prop_map(|(conversation, exclude)| Op::Pick { conversation, exclude }),
        4 => (0usize..10, outcome()).prop_map(|(key, outcome)| Op::Report { key, outcome }),
        2 => outcome().prop_map(Op::Finish),
        1 => Just(Op::Abandon),
        1 => (0usize..10, any::<u8>(), 0u64..60).prop_map(|(key, state, secs)| Op::Share { key, state, secs }),
        3 => (0u64..15_000).prop_map(Op::Advance),
    ]
}

fn usable(h: &Health) -> bool {
    matches!(
        h,
        Health::Healthy
            | Health::HalfOpen {
                trial_in_flight: false
            }
    )
}

fn run_pool(n: usize, balance: Balance, ops: &[Op]) -> Result<(), TestCaseError> {
    let keys = (0..n)
        .map(|i| PoolKey::new(Some(format!("k{i}")), &format!("secret-{i}")))
        .collect();
    let pool = KeyPool::new(keys, balance, HealthConfig::default());
    let start = Instant::now();
    let mut now = start;
    let mut leases: Vec<KeyLease> = Vec::new();
    for op in ops {
        match op {
            Op::Pick {
                conversation,
                exclude,
            } => {
                let before = pool.state(now);
                let open: Vec<usize> = (0..n)
                    .filter(|i| !exclude.contains(i) && usable(&before[*i].health))
                    .collect();
                match pool.pick(*conversation, now, exclude) {
                    Pick::Key(lease) => {
                        let i = lease.index();
                        prop_assert!(open.contains(&i), "picked {i} in state {:?}", before[i]);
                        prop_assert_eq!(
                            lease.is_trial(),
                            matches!(before[i].health, Health::HalfOpen { .. })
                        );
                        if balance == Balance::Sticky && !lease.is_trial() {
                            let again = pool.pick(*conversation, now, exclude).key();
                            prop_assert_eq!(again.map(|l| l.index()), Some(i), "sticky is stable");
                        }
                        leases.push(lease);
                    }
                    Pick::Unavailable {
                        retry_at,
                        all_cooling,
                    } => {
                        prop_assert!(open.is_empty(), "unavailable although {open:?} were usable");
                        let cooling: Vec<Instant> = before
                            .iter()
                            .filter_map(|k| match k.health {
                                Health::Cooling { until } => Some(until),
                                _ => None,
                            })
                            .collect();
                        prop_assert_eq!(retry_at, cooling.iter().min().copied());
                        let rest_cooling = before.iter().all(|k| {
                            matches!(k.health, Health::Disabled { .. } | Health::Cooling { .. })
                        });
                        prop_assert_eq!(all_cooling, rest_cooling && !cooling.is_empty());
                    }
                }
            }
            Op::Report { key, outcome } => {
                let change = pool.report(*key, *outcome, now);
                prop_assert!(*key < n || change.is_none());
            }
            Op::Finish(outcome) => {
                if !leases.is_empty() {
                    leases.remove(0).report(*outcome, now);
                }
            }
            Op::Abandon => drop(leases.pop()),
            Op::Share { key, state, secs } => {
                let state = if state % 4 == 0 {
                    SharedState::Disabled { status: 401 }
                } else {
                    SharedState::Cooling {
                        until: now + Duration::from_secs(*secs),
                    }
                };
                pool.apply_shared(*key, state);
            }
            Op::Advance(ms) => now += Duration::from_millis(*ms),
        }
        let state = pool.state(now);
        for (i, k) in state.iter().enumerate() {
            let held = leases.iter().filter(|l| l.index() == i).count() as u32;
            prop_assert_eq!(k.in_flight, held, "key {}", i);
        }
    }
    drop(leases);
    prop_assert!(pool.state(now).iter().all(|k| k.in_flight == 0));
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn pools_only_pick_usable_keys(
        n in 0usize..7,
        balance in prop_oneof![Just(Balance::Sticky), Just(Balance::LeastBusy), Just(Balance::RoundRobin)],
        ops in proptest::collection::vec(op(), 0..80),
    ) {
        run_pool(n, balance, &ops)?;
    }

    #[test]
    fn sticky_choice_depends_only_on_the_state(
        conversations in proptest::collection::vec(any::<u64>(), 1..50),
        disabled in proptest::collection::vec(0usize..6, 0..4),
    ) {
        // Two pools with the same keys and the same state choose alike (as two instances do).
        let build = || {
            let keys = (0..6).map(|i| PoolKey::new(None, &format!("secret-{i}"))).collect();
            let p = KeyPool::new(keys, Balance::Sticky, HealthConfig::default());
            for &k in &disabled {
                p.apply_shared(k, SharedState::Disabled { status: 401 });
            }
            p
        };
        let (a, b) = (build(), build());
        let now = Instant::now();
        for &c in &conversations {
            let pa = a.pick(c, now, &[]).key().map(|l| l.index());
            let pb = b.pick(c, now, &[]).key().map(|l| l.index());
            prop_assert_eq!(pa, pb);
            if let Some(i) = pa {
                prop_assert!(!disabled.contains(&i));
            } else {
                prop_assert!((0..6).all(|k| disabled.contains(&k)));
            }
        }
    }
}

#[test]
fn the_seeds_decode_and_route() {
    let routes = routes();
    let expected = [Some(0), Some(3), Some(1), Some(3)];
    for ((which, body), want) in seeds().iter().zip(expected) {
        let text = std::str::from_utf8(body).unwrap();
        let hints = body_hints(body);
        let check = |c: &flexiproxy::protocol::pivot::Conversation<'_>| {
            let f = RequestFeatures::of(c).with_hints(&hints);
            assert!(f.has_images, "seed {which}");
            assert_eq!(first_match(&routes, &f), want, "seed {which}");
        };
        match which {
            0 => check(&anthropic::decode_request::decode_request(text).unwrap()),
            1 => check(&openai_chat::decode_request::decode_request(body).unwrap()),
            2 => check(&responses::decode_request::decode_request(text, None).unwrap()),
            _ => check(&gemini::decode_request::decode_request(text, "g", false, None).unwrap()),
        }
    }
}
