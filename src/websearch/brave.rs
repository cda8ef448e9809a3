//! Brave's Search API: `GET <url>/res/v1/web/search?q=…&count=N&text_decorations=false` with
//! `X-Subscription-Token: <key>`; answers `{web: {results: [{title, url, description, age?,
//! page_age?}]}, …}` (`description` may still hold `<strong>` markup: cleaned by the
//! `Searcher`).

use super::{Backend, Hit, SearchError, read_json, str_field, transport};

pub struct Brave {
    http: reqwest::Client,
    endpoint: String,
    key: String,
}

impl Brave {
    pub fn new(http: reqwest::Client, base_url: &str, key: &str) -> Brave {
        Brave {
            http,
            endpoint: format!("{}/res/v1/web/search", base_url.trim_end_matches('/')),
            key: key.to_owned(),
        }
    }
}

#[async_trait::async_trait]
impl Backend for Brave {
    async fn search(&self, query: &str, max_results: usize) -> Result<Vec<Hit>, SearchError> {
        let count = max_results.clamp(1, 20).to_string();
        let response = self
            .http
            .get(&self.endpoint)
            .query(&[
                ("q", query),
                ("count", count.as_str()),
                ("text_decorations", "false"),
            ])
            .header("X-Subscription-Token", &self.key)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(transport)?;
        let answer = read_json(response).await?;
        Ok(hits(&answer, max_results))
    }
}

/// The web results of a Brave answer, whatever it holds.
pub fn hits(answer: &serde_json::Value, max_results: usize) -> Vec<Hit> {
    let Some(results) = answer.pointer("/web/results").and_then(|r| r.as_array()) else {
        return Vec::new();
    };
    results
        .iter()
        .filter(|r| !str_field(r, "url").is_empty())
        .take(max_results)
        .map(|r| {
            let age = match str_field(r, "page_age") {
                "" => str_field(r, "age"),
                age => age,
            };
            Hit {
                url: str_field(r, "url").to_owned(),
                title: str_field(r, "title").to_owned(),
                snippet: str_field(r, "description").to_owned(),
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
    fn reads_web_results_leniently() {
        let answer = json!({"type": "search", "query": {"original": "q"}, "web": {"results": [
            {"title": "A", "url": "https://a.example/", "description": "<strong>a</strong>",
             "age": "2 days ago", "meta_url": {"hostname": "a.example"}},
            {"title": "B", "url": "https://b.example/", "page_age": "2025-10-28T00:00:00"},
            {"title": "no url"},
        ]}});
        let hits = hits(&answer, 10);
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].page_age.as_deref(), Some("2 days ago"));
        assert_eq!(hits[1].page_age.as_deref(), Some("2025-10-28T00:00:00"));
        assert!(super::hits(&json!({"type": "search"}), 5).is_empty());
    }
}
