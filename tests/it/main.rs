//! Integration tests: a real Pingora listener, a fake provider over real HTTP, and real
//! clients (the official Python SDKs, Claude Code). One test binary (Pingora links slowly),
//! one module per area.

mod accounts;
mod attacker;
mod claims;
mod claude_code;
mod clients;
mod cline;
mod codex;
mod core;
mod deploy;
mod exchanges_browser;
mod fidelity;
mod gemini;
mod hardening;
mod harness;
mod ingress;
mod inspector;
mod inspector_rss;
mod management;
mod management_routes;
mod observability;
mod pairs;
mod notes;
mod panel_browser;
mod panel_edit;
mod passthrough;
mod probe;
mod quota_scale;
mod quotas;
mod reload;
mod routing;
mod scale;
mod sdk;
mod sdk_openai;
mod sdk_responses;
mod secrets_relay;
mod shared_sessions;
mod signup;
mod signup_admin;
mod signup_hostile;
mod usage_page;
mod web_search;
mod web_search_limits;
mod web_search_native;
mod web_search_sdk;
