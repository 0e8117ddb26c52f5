//! Passive measurement of live sessions: each upstream connection's bytes, as the session pushes them into its
//! ring, also go through a [`quality::Analyzer`](crate::quality::Analyzer) — on the upstream reader task, with
//! no lock and no copy — and its report is handed to the catalog ([`Catalog::record_quality`]) once it says
//! something (a verdict, after `quality_first_after` of streaming), then every `quality_every`, and when the
//! connection ends (with why). The hand-over is a spawned task: the reader never waits for the store.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::quality::{Analyzer, QualityReport, Verdict};
use crate::session::unix;

/// One upstream connection of a live session, measured from the bytes it relayed; exists so that the catalog
/// can keep, per source, what its stream really is (codec, size, frame rate, bitrates) and how it behaved
/// (time to first byte, how it ended) without any extra request to the provider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SourceMeasurement {
    /// The provider's stream that was played (the catalog's stream id).
    pub stream_id: i64,
    /// The account whose connection it was.
    pub account_id: i64,
    /// Unix seconds: when the connection was opened.
    pub started_at: u64,
    /// Unix seconds: when this measurement was taken.
    pub measured_at: u64,
    /// Milliseconds the connection had been streaming when measured.
    pub streamed_ms: u64,
    /// Milliseconds from sending the request to the first byte of the answer's body.
    pub ttfb_ms: Option<u64>,
    /// Why the connection ended (a stall, a break, the provider ending it, stopped, no viewers); `null` while
    /// it was still running.
    pub ended: Option<String>,
    /// True when it ended by failing (the session then reconnected or failed over).
    pub failed: bool,
    /// True when a probe measured it (a connection nobody watched, see [`crate::probe`]); false when a viewer's
    /// session did.
    #[serde(default)]
    pub probe: bool,
    /// What the stream is, as far as its bytes told.
    pub report: QualityReport,
}

/// How often a pending analyzer is asked again once `first_after` has passed.
const PENDING_RECHECK: Duration = Duration::from_secs(1);

/// The measuring side of one upstream connection, owned by the session's reader task.
pub(crate) struct Measurer {
    analyzer: Analyzer,
    catalog: Arc<dyn Catalog>,
    stream_id: i64,
    account_id: i64,
    started_at: SystemTime,
    opened: Instant,
    ttfb: Option<Duration>,
    every: Duration,
    /// When the report is looked at next.
    next_check: Instant,
    /// Whether a report of this connection was handed over already.
    reported: bool,
}

impl Measurer {
    pub(crate) fn new(
        catalog: Arc<dyn Catalog>,
        stream_id: i64,
        account_id: i64,
        ttfb: Option<Duration>,
        first_after: Duration,
        every: Duration,
    ) -> Measurer {
        let opened = Instant::now();
        Measurer {
            analyzer: Analyzer::new(),
            catalog,
            stream_id,
            account_id,
            started_at: SystemTime::now(),
            opened,
            ttfb,
            every,
            next_check: opened + first_after,
            reported: false,
        }
    }

    /// The next aligned packets the session pushes into its ring.
    #[inline]
    pub(crate) fn feed(&mut self, packets: &[u8]) {
        if !packets.is_empty() {
            self.analyzer.feed_packets(packets);
        }
    }

    /// Called on the session's flush timer: hands a report over when one is due. Costs a comparison when not.
    pub(crate) fn tick(&mut self, now: Instant) {
        if now < self.next_check {
            return;
        }
        let report = self.analyzer.report();
        // Until the stream has said what it is, ask again soon (the analyzer gives up on a stream with no
        // answer on its own, with a verdict); a periodic report goes out whatever it says.
        if report.verdict == Verdict::Pending && !self.reported && now - self.opened < self.every {
            self.next_check = now + PENDING_RECHECK;
            return;
        }
        self.send(report, now, None, false);
        self.reported = true;
        self.next_check = now + self.every;
    }

    /// The connection ended: its last report, with why.
    pub(crate) fn finish(self, ended: String, failed: bool) {
        let report = self.analyzer.report();
        if report.bytes == 0 {
            return;
        }
        self.send(report, Instant::now(), Some(ended), failed);
    }

    fn send(&self, report: QualityReport, now: Instant, ended: Option<String>, failed: bool) {
        let m = SourceMeasurement {
            stream_id: self.stream_id,
            account_id: self.account_id,
            started_at: unix(self.started_at),
            measured_at: unix(SystemTime::now()),
            streamed_ms: (now - self.opened).as_millis() as u64,
            ttfb_ms: self.ttfb.map(|d| d.as_millis() as u64),
            ended,
            failed,
            probe: false,
            report,
        };
        let catalog = self.catalog.clone();
        // Off the reader's path: the store may take its time.
        tokio::spawn(async move {
            let stream = m.stream_id;
            if let Err(e) = catalog.record_quality(m).await {
                tracing::warn!(stream, error = %e, "could not record the source measurement");
            }
        });
    }
}
