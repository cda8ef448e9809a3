//! Tavily's search API: `POST <url>/search` with `Authorization: Bearer <key>` and a JSON
//! body (`query`, `max_results`, `search_depth: basic`); answers `{results: [{title, url,
//! content, published_date?, score}], …}`. Errors (401, 403, 432, 433: key or plan; 429;
//! 400) carry `{detail: {error}}`, which is never relayed (it may echo the request).

use super::{Backend, Hit, SearchError, read_json, str_field, transport};

pub struct Tavily {
    http: reqwest::Client,
    endpoint: String,
    key: String,
}

impl Tavily {
    pub fn new(http: reqwest::Client, base_url: &str, key: &str) -> Tavily {
        Tavily {
            http,
            endpoint: format!("{}/search", base_url.trim_end_matches('/')),
            key: key.to_owned(),
        }
    }
}

#[async_trait::async_trait]
impl Backend for Tavily {
    async fn search(&self, query: &str, max_results: usize) -> Result<Vec<Hit>, SearchError> {
        let body = serde_json::json!({
            "query": query,
            "max_results": max_results,
            "search_depth": "basic",
            "include_answer": false,
            "include_raw_content": false,
        });
        let response = self
            .http
            .post(&self.endpoint)
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .map_err(transport)?;
        let answer = read_json(response).await?;
        Ok(hits(&answer, max_results))
    }
}

/// The results of a Tavily answer, whatever it holds.
pub fn hits(answer: &serde_json::Value, max_results: usize) -> Vec<Hit> {
    let Some(results) = answer.get("results").and_then(|r| r.as_array()) else {
        return Vec::new();
    };
    results
        .iter()
        .filter(|r| !str_field(r, "url").is_empty())
        .take(max_results)
        .map(|r| {
            let age = str_field(r, "published_date");
            Hit {
                url: str_field(r, "url").to_owned(),
                title: str_field(r, "title").to_owned(),
                snippet: str_field(r, "content").to_owned(),
                page_age: (!age.is_empty()).then(|| age.to_owned()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_results_leniently() {
        let answer = json!({"query": "q", "answer": null, "images": [], "results": [
            {"title": "A", "url": "https://a.example/", "content": "about a", "score": 0.9,
             "published_date": "Tue, 28 Oct 2025"},
            {"title": "no url", "content": "x"},
            {"url": "https://b.example/", "content": ["not", "text"]},
        ], "response_time": 1.2});
        let hits = hits(&answer, 10);
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].page_age.as_deref(), Some("Tue, 28 Oct 2025"));
        assert_eq!(hits[1].snippet, "");
        assert!(super::hits(&json!({"detail": {"error": "bad key"}}), 5).is_empty());
    }
}
