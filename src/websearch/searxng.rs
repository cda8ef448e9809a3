//! SearXNG's JSON API: `GET <url>/search?q=…&format=json` (JSON must be enabled in its
//! `settings.yml`: `search.formats: [html, json]`, else it answers 403). Answers
//! `{results: [{url, title, content, publishedDate?, …}], …}`; every field is read leniently.

use super::{Backend, Hit, SearchError, read_json, str_field, transport};

pub struct Searxng {
    http: reqwest::Client,
    endpoint: String,
}

impl Searxng {
    pub fn new(http: reqwest::Client, base_url: &str) -> Searxng {
        Searxng {
            http,
            endpoint: format!("{}/search", base_url.trim_end_matches('/')),
        }
    }
}

#[async_trait::async_trait]
impl Backend for Searxng {
    async fn search(&self, query: &str, max_results: usize) -> Result<Vec<Hit>, SearchError> {
        let response = self
            .http
            .get(&self.endpoint)
            .query(&[("q", query), ("format", "json"), ("pageno", "1")])
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(transport)?;
        let answer = read_json(response).await?;
        Ok(hits(&answer, max_results))
    }
}

/// The results of a SearXNG answer, whatever it holds.
pub fn hits(answer: &serde_json::Value, max_results: usize) -> Vec<Hit> {
    let Some(results) = answer.get("results").and_then(|r| r.as_array()) else {
        return Vec::new();
    };
    results
        .iter()
        .filter(|r| !str_field(r, "url").is_empty())
        .take(max_results)
        .map(|r| {
            let age = str_field(r, "publishedDate");
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
        let answer = json!({"query": "q", "results": [
            {"url": "https://a.example/", "title": "A", "content": "about a", "publishedDate": "2025-10-28"},
            {"title": "no url"},
            {"url": "https://b.example/", "title": 7, "content": null},
        ]});
        let hits = hits(&answer, 10);
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].page_age.as_deref(), Some("2025-10-28"));
        assert_eq!(hits[1].title, "");
        assert!(super::hits(&json!({"results": "x"}), 5).is_empty());
        assert!(super::hits(&json!([]), 5).is_empty());
    }
}
