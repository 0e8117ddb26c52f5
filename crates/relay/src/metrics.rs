//! Prometheus metrics of the relay. Counters and gauges are atomics updated
//! where things happen (a chunk to a viewer is one relaxed add); the text
//! exposition is built only when `/metrics` is scraped. The registry belongs
//! to the relay (not a global), so every instance — and every test — has its
//! own.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The relay's metrics, cheap to clone (shared atomics).
#[derive(Clone, Default)]
pub struct RelayMetrics {
    pub sessions: Gauge,
    pub viewers: Gauge,
    pub bytes_out: Counter,
    pub bytes_in: Counter,
    pub failovers: Counter,
    pub jumps: Counter,
    pub drops: Counter,
    pub acquire_failures: Counter,
}

impl RelayMetrics {
    /// A registry holding these metrics, under the `tunerpool_` prefix.
    pub fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix("tunerpool");
        r.register("sessions", "Live sessions (one upstream connection each)", self.sessions.clone());
        r.register("viewers", "Viewers connected to live sessions", self.viewers.clone());
        r.register("bytes_out", "Bytes sent to viewers", self.bytes_out.clone());
        r.register("bytes_in", "Bytes read from upstreams", self.bytes_in.clone());
        r.register("failovers", "Upstream switches of live sessions", self.failovers.clone());
        r.register("jumps", "Times a slow viewer jumped to the live edge", self.jumps.clone());
        r.register("drops", "Viewers dropped for being too slow", self.drops.clone());
        r.register(
            "acquire_failures",
            "Requests refused because no account had a free slot",
            self.acquire_failures.clone(),
        );
        r
    }
}

/// The Prometheus text exposition of `registry`.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, registry);
    out
}
