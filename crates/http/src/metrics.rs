//! `GET /metrics`: the Prometheus exposition, and the HTTP metrics it
//! includes.
//!
//! Three kinds of series, one registry per scrape (prefix `tunerpool_`):
//! - the relay's counters (bytes, failovers, refusals, slow viewers),
//!   updated where things happen (`tunerpool_relay::metrics`);
//! - HTTP counters kept here: requests by *matched route* and status (a
//!   middleware; never the raw URI, which carries users' passwords) and
//!   login failures by reason;
//! - gauges read at scrape time from what already holds the state: slots
//!   used and allowed per account and provider (the ledger and the store,
//!   as the pool status computes them), sessions and viewers per account
//!   (the relay), each provider's last sync and guide fetch (the store),
//!   and the events the writer had to drop.
//!
//! Label values are provider and account names and ids, reasons, routes —
//! never a URL or a credential. Prometheus asks for OpenMetrics and gets it;
//! anything else gets the classic text format (what `promtool check
//! metrics` reads).

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use tunerpool_catalog::ProviderKind;

use crate::AppState;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Counters of the HTTP surface. One per router, shared by the request
/// middleware, the login checks and the `/metrics` handler.
#[derive(Default)]
pub(crate) struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    login_failures: Family<ReasonLabels, Counter>,
}

impl HttpMetrics {
    /// A refused login: `bad_credentials`, `rate_limited` (client logins)
    /// or `admin_token` (the admin API).
    pub(crate) fn login_failed(&self, reason: &'static str) {
        self.login_failures.get_or_create(&ReasonLabels { reason }).inc();
    }

    fn register(&self, r: &mut Registry) {
        r.register("http_requests", "HTTP requests answered, by matched route and status", self.requests.clone());
        r.register("login_failures", "Refused logins, by reason", self.login_failures.clone());
    }
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware: counts every answered request under its matched route
/// (`/live/{u}/{p}/{file}`), or `unmatched`.
pub(crate) async fn track(State(m): State<Arc<HttpMetrics>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_string();
    let method = method_label(req.method());
    let resp = next.run(req).await;
    m.requests.get_or_create(&RequestLabels { route, method, status: resp.status().as_u16() }).inc();
    resp
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ItemLabels {
    provider: String,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    kind: &'static str,
    provider: String,
    account: String,
    account_id: i64,
}

type AccountLabels = tunerpool_relay::metrics::AccountLabels;
type Seconds = Gauge<f64, std::sync::atomic::AtomicU64>;

/// The gauges of one scrape.
#[derive(Default)]
struct Snapshot {
    ledger_up: Gauge,
    account_slots_used: Family<AccountLabels, Gauge>,
    account_slots_max: Family<AccountLabels, Gauge>,
    account_usable: Family<AccountLabels, Gauge>,
    provider_slots_used: Family<ProviderLabels, Gauge>,
    provider_slots_max: Family<ProviderLabels, Gauge>,
    sessions: Family<SessionLabels, Gauge>,
    viewers: Family<AccountLabels, Gauge>,
    sync_ok: Family<ProviderLabels, Gauge>,
    sync_last_success: Family<ProviderLabels, Gauge>,
    sync_duration: Family<ProviderLabels, Seconds>,
    sync_items: Family<ItemLabels, Gauge>,
    sync_skipped: Family<ProviderLabels, Gauge>,
    guide_ok: Family<ProviderLabels, Gauge>,
    guide_last_success: Family<ProviderLabels, Gauge>,
    guide_duration: Family<ProviderLabels, Seconds>,
    guide_channels: Family<ProviderLabels, Gauge>,
    guide_programmes: Family<ProviderLabels, Gauge>,
    guide_size: Family<ProviderLabels, Gauge>,
}

impl Snapshot {
    /// Reads the state behind the gauges. A part that cannot be read (the
    /// ledger in Redis, the store) is left out and logged, so the rest is
    /// still exposed.
    async fn take(st: &AppState) -> Snapshot {
        let s = Snapshot::default();
        let provider = |name: &str| ProviderLabels { provider: name.to_string() };
        match crate::pool_status::snapshot(st).await {
            Ok(pool) => {
                s.ledger_up.set(1);
                for p in &pool.providers {
                    s.provider_slots_used.get_or_create(&provider(&p.provider)).set(p.totals.active.into());
                    s.provider_slots_max.get_or_create(&provider(&p.provider)).set(p.totals.capacity.into());
                    for a in &p.accounts {
                        let l = AccountLabels::new(&p.provider, &a.name, a.id);
                        s.account_slots_used.get_or_create(&l).set(a.active.into());
                        s.account_slots_max.get_or_create(&l).set(a.max_streams.into());
                        s.account_usable.get_or_create(&l).set(a.usable.into());
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e.message, "metrics: cannot read the pool status"),
        }
        for session in st.relay.sessions() {
            let (provider_name, account, account_id) = match &session.upstream {
                Some(u) => (u.provider.clone(), u.account.clone(), u.account_id),
                None => (String::new(), String::new(), 0),
            };
            let l = SessionLabels { kind: session.kind, provider: provider_name, account, account_id };
            s.sessions.get_or_create(&l).inc();
            let viewers = AccountLabels::new(&l.provider, &l.account, l.account_id);
            s.viewers.get_or_create(&viewers).inc_by(session.viewers.len() as i64);
        }
        match st.store.providers().await {
            Ok(providers) => {
                for p in &providers {
                    let l = provider(&p.name);
                    if let Some(ok) = p.sync.ok {
                        s.sync_ok.get_or_create(&l).set(ok.into());
                    }
                    if let Some(at) = p.sync.last_ok_at {
                        s.sync_last_success.get_or_create(&l).set(at);
                    }
                    if let Some(ms) = p.sync.duration_ms {
                        s.sync_duration.get_or_create(&l).set(ms as f64 / 1000.0);
                    }
                    for (kind, n) in [("live", p.sync.live), ("vod", p.sync.vod), ("series", p.sync.series)] {
                        s.sync_items.get_or_create(&ItemLabels { provider: p.name.clone(), kind }).set(n);
                    }
                    s.sync_skipped.get_or_create(&l).set(p.sync.skipped);
                }
                match tunerpool_catalog::epg::statuses(&st.store).await {
                    Ok(guides) => {
                        for g in guides {
                            let Some(p) = providers.iter().find(|p| p.id == g.provider_id) else { continue };
                            if g.fetched_at.is_none() || !guide_applies(p.kind, p.epg_url.as_deref()) {
                                continue;
                            }
                            let l = provider(&p.name);
                            s.guide_ok.get_or_create(&l).set(g.ok.unwrap_or(false).into());
                            let values = [
                                (&s.guide_last_success, g.ok_at),
                                (&s.guide_channels, g.channels),
                                (&s.guide_programmes, g.programmes),
                                (&s.guide_size, g.bytes),
                            ];
                            for (family, value) in values {
                                if let Some(v) = value {
                                    family.get_or_create(&l).set(v);
                                }
                            }
                            if let Some(ms) = g.duration_ms {
                                s.guide_duration.get_or_create(&l).set(ms as f64 / 1000.0);
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "metrics: cannot read the guide status"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "metrics: cannot read the providers"),
        }
        s
    }

    fn register(self, r: &mut Registry) {
        r.register("ledger_up", "Whether the lease ledger answered this scrape (1) or not (0)", self.ledger_up);
        r.register("account_slots_used", "Upstream connection slots held on an account", self.account_slots_used);
        r.register(
            "account_slots_max",
            "Upstream connections an account allows (its effective limit)",
            self.account_slots_max,
        );
        r.register("account_usable", "Whether selection may use an account (1) or not (0)", self.account_usable);
        r.register(
            "provider_slots_used",
            "Upstream connection slots held on a provider's enabled accounts",
            self.provider_slots_used,
        );
        r.register(
            "provider_slots_max",
            "Upstream connections a provider's enabled accounts allow in all",
            self.provider_slots_max,
        );
        r.register("sessions", "Live sessions and VOD transfers, by kind and the account they use", self.sessions);
        r.register("viewers", "Viewers connected, by the account they are served from", self.viewers);
        r.register("sync_ok", "Whether a provider's last catalog sync succeeded (1) or failed (0)", self.sync_ok);
        r.register_with_unit(
            "sync_last_success_timestamp",
            "When a provider's catalog last synced successfully (Unix time)",
            Unit::Seconds,
            self.sync_last_success,
        );
        r.register_with_unit(
            "sync_duration",
            "How long a provider's last catalog sync took",
            Unit::Seconds,
            self.sync_duration,
        );
        r.register("catalog_items", "Entries in a provider's catalog, by kind", self.sync_items);
        r.register("sync_skipped_lines", "Entries or lines a provider's last sync could not use", self.sync_skipped);
        r.register("guide_ok", "Whether a provider's last guide fetch succeeded (1) or failed (0)", self.guide_ok);
        r.register_with_unit(
            "guide_last_success_timestamp",
            "When a provider's guide was last fetched successfully (Unix time)",
            Unit::Seconds,
            self.guide_last_success,
        );
        r.register_with_unit(
            "guide_duration",
            "How long a provider's last guide fetch took",
            Unit::Seconds,
            self.guide_duration,
        );
        r.register("guide_channels", "Channels in a provider's stored guide", self.guide_channels);
        r.register("guide_programmes", "Programmes in a provider's stored guide", self.guide_programmes);
        r.register_with_unit("guide_size", "Size of a provider's stored guide", Unit::Bytes, self.guide_size);
    }
}

/// The labels of `tunerpool_instance_info` in cluster mode.
///
/// Exists because series are not labelled with the instance themselves: Prometheus gives every scraped series the
/// target's own `instance` label (an exported `instance` would be renamed `exported_instance`), so one info series
/// per member carries its cluster id (`cluster.instance_id`), to be joined in where a query wants it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    instance_id: String,
}

/// Whether a provider has a guide to fetch at all (its status is meaningless otherwise).
fn guide_applies(kind: ProviderKind, epg_url: Option<&str>) -> bool {
    kind == ProviderKind::Xtream || epg_url.is_some_and(|u| !u.trim().is_empty())
}

/// `GET /metrics`.
pub(crate) async fn metrics(
    State(st): State<AppState>,
    Extension(http): Extension<Arc<HttpMetrics>>,
    headers: HeaderMap,
) -> Response {
    let mut r = Registry::with_prefix("tunerpool");
    st.relay.metrics().register(&mut r);
    http.register(&mut r);
    r.register(
        "events_dropped",
        "Events not recorded because the event writer's queue was full",
        ConstCounter::new(st.store.dropped_events()),
    );
    Snapshot::take(&st).await.register(&mut r);
    if let Some(link) = st.relay.cluster() {
        let info = Family::<InstanceLabels, Gauge>::default();
        info.get_or_create(&InstanceLabels { instance_id: link.instance_id().to_owned() }).set(1);
        r.register(
            "instance_info",
            "This cluster member's id (always 1); join on the scrape target's instance label to break series down by member",
            info,
        );
    }
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &r);
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    if openmetrics {
        ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response()
    } else {
        ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], openmetrics_to_text(&text))
            .into_response()
    }
}

/// The OpenMetrics exposition in the classic Prometheus text format: a
/// counter's family is named like its `_total` sample, and the `# UNIT` and
/// `# EOF` lines (which that format does not have) are left out.
fn openmetrics_to_text(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut help: Option<&str> = None;
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest);
            continue;
        }
        if let Some((name, kind)) = line.strip_prefix("# TYPE ").and_then(|r| r.split_once(' ')) {
            let name = if kind == "counter" { format!("{name}_total") } else { name.to_string() };
            if let Some(text) = help.take().and_then(|h| h.split_once(' ')).map(|(_, text)| text) {
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            let kind = if kind == "unknown" { "untyped" } else { kind };
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_becomes_classic_text() {
        let om = "# HELP tunerpool_viewer_sent_bytes Bytes sent.\n# TYPE tunerpool_viewer_sent_bytes counter\n\
                  # UNIT tunerpool_viewer_sent_bytes bytes\ntunerpool_viewer_sent_bytes_total{provider=\"a\"} 5\n\
                  # HELP tunerpool_sessions Live sessions.\n# TYPE tunerpool_sessions gauge\ntunerpool_sessions 1\n# EOF\n";
        assert_eq!(
            openmetrics_to_text(om),
            "# HELP tunerpool_viewer_sent_bytes_total Bytes sent.\n# TYPE tunerpool_viewer_sent_bytes_total counter\n\
             tunerpool_viewer_sent_bytes_total{provider=\"a\"} 5\n\
             # HELP tunerpool_sessions Live sessions.\n# TYPE tunerpool_sessions gauge\ntunerpool_sessions 1\n"
        );
    }
}
