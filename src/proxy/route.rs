//! Which endpoint a request is for, from its method and path alone (query strings such as
//! Claude Code's `?beta=true` are ignored).

use super::errors::ClientProtocol;

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
    /// A known path with the wrong method.
    MethodNotAllowed,
    NotFound,
}

impl Route {
    /// Routes that need a client key.
    pub fn needs_auth(self) -> bool {
        matches!(
            self,
            Route::Models | Route::Messages | Route::CountTokens | Route::ChatCompletions
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
            Route::MethodNotAllowed => "method_not_allowed",
            Route::NotFound => "not_found",
        }
    }
}

pub fn route(method: &str, path_and_query: &str) -> Route {
    let path = path_and_query.split('?').next().unwrap_or("");
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
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
        "/v1/models" => ("GET", Route::Models),
        "/v1/messages" => ("POST", Route::Messages),
        "/v1/messages/count_tokens" => ("POST", Route::CountTokens),
        "/v1/chat/completions" | "/chat/completions" => ("POST", Route::ChatCompletions),
        _ => return Route::NotFound,
    };
    if method == expected || (expected == "GET" && method == "HEAD") {
        route
    } else {
        Route::MethodNotAllowed
    }
}

/// The protocol the client speaks: OpenAI for OpenAI endpoints; for shared endpoints
/// (`/v1/models`) Anthropic when it sends Anthropic headers.
pub fn client_protocol(route: Route, has_anthropic_headers: bool) -> ClientProtocol {
    match route {
        Route::ChatCompletions => ClientProtocol::OpenAi,
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
        assert_eq!(route("POST", "/v2/other"), Route::NotFound);
        assert!(!Route::Probe.needs_auth() && Route::Messages.needs_auth());
    }
}
