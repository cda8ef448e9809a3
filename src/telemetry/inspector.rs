//! The inspector's memory (docs/inspector.md): the last exchanges of each adapter with
//! `inspect:`, in order, at most `keep` per adapter, and within a byte bound per adapter and
//! in total (the oldest go first). Nothing is written to disk; a restart forgets them all.

use super::capture::Exchange;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// The kept exchanges of every adapter.
#[derive(Debug)]
pub struct Inspector {
    total_cap: usize,
    adapter_cap: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    used: usize,
    adapters: HashMap<String, Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    used: usize,
    exchanges: VecDeque<(usize, Arc<Exchange>)>,
}

/// Bytes in use and the bounds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Memory {
    pub used: usize,
    pub cap: usize,
    pub adapter_used: usize,
    pub adapter_cap: usize,
}

impl Inspector {
    pub fn new(total_cap: usize, adapter_cap: usize) -> Inspector {
        Inspector {
            total_cap,
            adapter_cap: adapter_cap.min(total_cap),
            inner: Mutex::default(),
        }
    }

    /// Keeps `exchange` as the adapter's newest, dropping what `keep` and the bounds leave no
    /// room for. An exchange larger than a bound is not kept. Returns its id.
    pub fn keep(&self, adapter: &str, keep: usize, mut exchange: Exchange) -> Option<u64> {
        let cost = exchange.cost();
        if cost > self.adapter_cap || keep == 0 {
            return None;
        }
        let mut inner = crate::lock(&self.inner);
        inner.next_id += 1;
        let id = inner.next_id;
        exchange.id = id;
        let mut freed = 0;
        {
            let kept = inner.adapters.entry(adapter.to_owned()).or_default();
            kept.exchanges.push_back((cost, Arc::new(exchange)));
            kept.used += cost;
            while kept.exchanges.len() > keep || kept.used > self.adapter_cap {
                let Some((c, _)) = kept.exchanges.pop_front() else {
                    break;
                };
                kept.used -= c;
                freed += c;
            }
        }
        inner.used = inner.used + cost - freed;
        // Over the total: the oldest exchange of any adapter goes.
        while inner.used > self.total_cap {
            let oldest = inner
                .adapters
                .iter()
                .filter_map(|(name, k)| k.exchanges.front().map(|(_, e)| (e.id, name.clone())))
                .min();
            let Some((_, name)) = oldest else { break };
            let Some(kept) = inner.adapters.get_mut(&name) else {
                break;
            };
            let c = kept.exchanges.pop_front().map_or(0, |(c, _)| c);
            kept.used -= c;
            inner.used -= c;
        }
        inner.adapters.retain(|_, k| !k.exchanges.is_empty());
        Some(id)
    }

    /// The adapter's kept exchanges, newest first.
    pub fn list(&self, adapter: &str) -> Vec<Arc<Exchange>> {
        let inner = crate::lock(&self.inner);
        inner.adapters.get(adapter).map_or_else(Vec::new, |k| {
            k.exchanges.iter().rev().map(|(_, e)| e.clone()).collect()
        })
    }

    pub fn get(&self, adapter: &str, id: u64) -> Option<Arc<Exchange>> {
        let inner = crate::lock(&self.inner);
        let kept = inner.adapters.get(adapter)?;
        kept.exchanges
            .iter()
            .find(|(_, e)| e.id == id)
            .map(|(_, e)| e.clone())
    }

    pub fn memory(&self, adapter: &str) -> Memory {
        let inner = crate::lock(&self.inner);
        Memory {
            used: inner.used,
            cap: self.total_cap,
            adapter_used: inner.adapters.get(adapter).map_or(0, |k| k.used),
            adapter_cap: self.adapter_cap,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::capture::{Capture, Outcome};
    use std::time::Instant;

    fn exchange(body: usize) -> Exchange {
        let req = http::Request::builder()
            .uri("/v1/messages")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let mut c = Capture::new(Instant::now(), 1, &req, None);
        c.client_body(&vec![b'a'; body]);
        c.finish(Outcome::default())
    }

    #[test]
    fn keeps_the_last_n_in_order() {
        let i = Inspector::new(1 << 30, 1 << 30);
        for _ in 0..5 {
            i.keep("a", 3, exchange(10));
        }
        let ids: Vec<u64> = i.list("a").iter().map(|e| e.id).collect();
        assert_eq!(ids, [5, 4, 3]);
        assert!(i.get("a", 2).is_none() && i.get("a", 4).is_some());
        assert!(i.list("b").is_empty());
    }

    #[test]
    fn memory_stays_within_both_bounds() {
        let i = Inspector::new(300_000, 200_000);
        for n in 0..50 {
            i.keep(if n % 2 == 0 { "a" } else { "b" }, 50, exchange(60_000));
            let m = i.memory("a");
            assert!(m.used <= 300_000 && m.adapter_used <= 200_000, "{m:?}");
        }
        assert_eq!(i.list("a").len() + i.list("b").len(), 4);
        // Too large for any bound: not kept.
        assert!(i.keep("a", 50, exchange(250_000)).is_none());
    }
}
