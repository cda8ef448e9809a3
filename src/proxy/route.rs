//! Which endpoint a request is for, from its method and path alone (query strings such as
//! Claude Code's `?beta=true` are ignored).

use super::errors::ClientProtocol;
use crate::protocol::gemini::GeminiCall;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `HEAD /`, `GET /`: connectivity probes, answered without auth.
    Probe,
    /// `GET /health`: liveness.
    Health,
    /// `GET /ready`: readiness (503 once shutdown begins).
    Ready,
    /// `GET /v1/models`.
    Models,
    /// `POST /v1/messages`.
    Messages,
    /// `POST /v1/messages/count_tokens`.
    CountTokens,
    /// `POST /v1/chat/completions`.
    ChatCompletions,
    /// `POST /v1/responses`.
    Responses,
    /// `POST /v1/responses/input_tokens`.
    ResponsesInputTokens,
    /// `POST /v1beta/models/{model}:{generateContent|streamGenerateContent|countTokens}`
    /// (and `/v1/models/…`): the call is parsed into the request context.
    Gemini,
    /// `GET /v1beta/models`.
    GeminiModels,
    /// A known path with the wrong method.
    MethodNotAllowed,
    NotFound,
}

impl Route {
    /// Routes that need a client key.
    pub fn needs_auth(self) -> bool {
        matches!(
            self,
            Route::Models
                | Route::Messages
                | Route::CountTokens
                | Route::ChatCompletions
                | Route::Responses
                | Route::ResponsesInputTokens
                | Route::Gemini
                | Route::GeminiModels
        )
    }

    pub fn is_probe(self) -> bool {
        matches!(self, Route::Probe | Route::Health | Route::Ready)
    }

    pub fn name(self) -> &'static str {
        match self {
            Route::Probe => "probe",
            Route::Health => "health",
            Route::Ready => "ready",
            Route::Models => "models",
            Route::Messages => "messages",
            Route::CountTokens => "count_tokens",
            Route::ChatCompletions => "chat_completions",
            Route::Responses => "responses",
            Route::ResponsesInputTokens => "responses_input_tokens",
            Route::Gemini => "gemini",
            Route::GeminiModels => "gemini_models",
            Route::MethodNotAllowed => "method_not_allowed",
            Route::NotFound => "not_found",
        }
    }
}

/// Every API endpoint answers with and without the `/v1` prefix, so one base URL works
/// whether a client appends `/v1/<endpoint>` (the Anthropic and OpenAI SDKs on a bare host)
/// or only `/<endpoint>` (clients told to use a base URL ending in `/v1`).
pub fn route(method: &str, path_and_query: &str) -> Route {
    let path = path_and_query.split('?').next().unwrap_or("");
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    if let Some(route) = gemini_route(method, path) {
        return route;
    }
    let api_path = path
        .strip_prefix("/v1")
        .filter(|rest| rest.starts_with('/'));
    let path = match api_path {
        Some(rest) if rest != "/health" && rest != "/ready" => rest,
        _ => path,
    };
    let (expected, route) = match path {
        "" | "/" => {
            return if matches!(method, "GET" | "HEAD") {
                Route::Probe
            } else {
                Route::MethodNotAllowed
            };
        }
        "/health" | "/healthz" | "/livez" => ("GET", Route::Health),
        "/ready" | "/readyz" => ("GET", Route::Ready),
        "/models" => ("GET", Route::Models),
        "/messages" => ("POST", Route::Messages),
        "/messages/count_tokens" => ("POST", Route::CountTokens),
        "/chat/completions" => ("POST", Route::ChatCompletions),
        "/responses" => ("POST", Route::Responses),
        "/responses/input_tokens" => ("POST", Route::ResponsesInputTokens),
        _ => return Route::NotFound,
    };
    if method == expected || (expected == "GET" && method == "HEAD") {
        route
    } else {
        Route::MethodNotAllowed
    }
}

/// Gemini's paths: `/v1beta/models` and `/{v1beta,v1}/models/{model}:{method}`.
fn gemini_route(method: &str, path: &str) -> Option<Route> {
    let rest = path
        .strip_prefix("/v1beta")
        .or_else(|| path.strip_prefix("/v1").filter(|r| r.contains(':')))?;
    let (route, expected) = if rest == "/models" {
        (Route::GeminiModels, "GET")
    } else if rest.starts_with("/models/") && rest.contains(':') {
        match GeminiCall::parse(rest, None) {
            Some(_) => (Route::Gemini, "POST"),
            None => return Some(Route::NotFound),
        }
    } else {
        return None;
    };
    Some(
        if method == expected || (expected == "GET" && method == "HEAD") {
            route
        } else {
            Route::MethodNotAllowed
        },
    )
}

/// The Gemini call a request's path and query make.
pub fn gemini_call(path: &str, query: Option<&str>) -> Option<GeminiCall> {
    let rest = path
        .strip_prefix("/v1beta")
        .or_else(|| path.strip_prefix("/v1"))?;
    GeminiCall::parse(rest, query)
}

/// The protocol the client speaks: OpenAI for OpenAI endpoints; for shared endpoints
/// (`/v1/models`) Anthropic when it sends Anthropic headers.
pub fn client_protocol(route: Route, has_anthropic_headers: bool) -> ClientProtocol {
    match route {
        Route::ChatCompletions => ClientProtocol::OpenAi,
        Route::Responses | Route::ResponsesInputTokens => ClientProtocol::Responses,
        Route::Gemini | Route::GeminiModels => ClientProtocol::Gemini,
        Route::Models if !has_anthropic_headers => ClientProtocol::OpenAi,
        _ => ClientProtocol::Anthropic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("HEAD", "/"), Route::Probe);
        assert_eq!(route("GET", "/"), Route::Probe);
        assert_eq!(route("POST", "/v1/messages?beta=true"), Route::Messages);
        assert_eq!(route("POST", "/v1/messages/"), Route::Messages);
        assert_eq!(
            route("POST", "/v1/messages/count_tokens?beta=true"),
            Route::CountTokens
        );
        assert_eq!(route("GET", "/v1/messages"), Route::MethodNotAllowed);
        assert_eq!(route("GET", "/v1/models"), Route::Models);
        assert_eq!(
            route("POST", "/v1/chat/completions"),
            Route::ChatCompletions
        );
        assert_eq!(route("GET", "/health"), Route::Health);
        // One base URL: every endpoint with and without `/v1`.
        for (method, path, expected) in [
            ("POST", "/messages", Route::Messages),
            ("POST", "/messages?beta=true", Route::Messages),
            ("POST", "/messages/count_tokens", Route::CountTokens),
            ("GET", "/models", Route::Models),
            ("POST", "/chat/completions", Route::ChatCompletions),
            ("POST", "/v1/chat/completions/", Route::ChatCompletions),
            ("POST", "/v1/responses", Route::Responses),
            ("POST", "/responses", Route::Responses),
            (
                "POST",
                "/responses/input_tokens",
                Route::ResponsesInputTokens,
            ),
            (
                "POST",
                "/v1/responses/input_tokens",
                Route::ResponsesInputTokens,
            ),
            (
                "POST",
                "/v1beta/models/g:streamGenerateContent?alt=sse",
                Route::Gemini,
            ),
            ("POST", "/v1beta/models/m:generateContent", Route::Gemini),
            ("POST", "/v1/models/m:countTokens", Route::Gemini),
            ("GET", "/v1beta/models", Route::GeminiModels),
            (
                "GET",
                "/v1beta/models/m:generateContent",
                Route::MethodNotAllowed,
            ),
            ("POST", "/v1beta/models/m:unknownMethod", Route::NotFound),
        ] {
            assert_eq!(route(method, path), expected, "{method} {path}");
        }
        assert_eq!(route("POST", "/v1"), Route::NotFound);
        assert_eq!(route("POST", "/v1v1/messages"), Route::NotFound);
        assert_eq!(route("GET", "/v1/health"), Route::NotFound);
        assert_eq!(route("POST", "/v2/other"), Route::NotFound);
        assert!(!Route::Probe.needs_auth() && Route::Messages.needs_auth());
    }
}
