//! Sending queued alert deliveries to webhooks, with retries.
//!
//! The outbox is the store's (`alert_deliveries`), so an alert survives a
//! receiver that is down and a restart of the gateway. One task
//! ([`Sender::spawn`]) sends what is due, one request at a time with a
//! timeout, and sleeps until the next delivery is due or it is woken (a new
//! alert). A failed request is retried after an exponentially growing delay
//! ([`Backoff`]) until `give_up_after` has passed since the alert event. The
//! task never blocks anything else: the server does not wait for it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use tunerpool_catalog::alerts::Alert;
use tunerpool_catalog::{CatalogError, Store};

use crate::webhook::Webhook;

/// When to try a failed delivery again. Exists so that a receiver that is
/// down is neither hammered nor forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay after the first failure; it doubles with each further one.
    pub first: Duration,
    /// The longest delay between attempts.
    pub max: Duration,
    /// A delivery still failing this long after its alert event is given up.
    pub give_up_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_secs(5),
            max: Duration::from_secs(15 * 60),
            give_up_after: Duration::from_secs(24 * 60 * 60),
        }
    }
}

impl Backoff {
    /// The delay after the `failures`-th failure (1 for the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(30));
        self.first.saturating_mul(factor).min(self.max)
    }
}

/// What one round of sending did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliverRun {
    pub sent: usize,
    pub failed: usize,
    pub gave_up: usize,
}

/// Why the sender cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(String),
}

/// Sends due deliveries to the configured webhooks. Exists so that alert
/// delivery has one owner: its HTTP client, its webhooks and its backoff.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    webhooks: Arc<Vec<Webhook>>,
    backoff: Backoff,
}

/// Unix milliseconds now.
fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Sender {
    /// A sender to `webhooks`; each request is bounded by `timeout`.
    pub fn new(webhooks: Vec<Webhook>, backoff: Backoff, timeout: Duration) -> Result<Sender, SenderError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect would send the payload somewhere the admin did not configure.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tunerpool/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SenderError::Client(e.without_url().to_string()))?;
        Ok(Sender { client, webhooks: Arc::new(webhooks), backoff })
    }

    pub fn webhooks(&self) -> &[Webhook] {
        &self.webhooks
    }

    /// Sends every delivery due now, one at a time.
    pub async fn deliver_due(&self, store: &Store) -> Result<DeliverRun, CatalogError> {
        let mut run = DeliverRun::default();
        let due = store.due_deliveries(now_ms(), 100).await?;
        for d in due {
            let now = tunerpool_catalog::now();
            let Some(hook) = self.webhooks.iter().find(|w| w.target() == d.target) else {
                store.delivery_failed(d.id, now, "the webhook is no longer configured", None).await?;
                run.gave_up += 1;
                continue;
            };
            match self.send(hook, &d.alert, &d.event).await {
                Ok(()) => {
                    store.delivery_done(d.id, now).await?;
                    tracing::info!(alert = d.alert.id, event = %d.event, webhook = %hook, "alert delivered");
                    run.sent += 1;
                }
                Err(why) => {
                    let failures = d.attempts + 1;
                    let age = Duration::from_secs(u64::try_from(now - d.created_at).unwrap_or(0));
                    if age >= self.backoff.give_up_after {
                        store.delivery_failed(d.id, now, &why, None).await?;
                        tracing::warn!(alert = d.alert.id, webhook = %hook, attempts = failures, error = %why,
                            "alert delivery given up");
                        run.gave_up += 1;
                    } else {
                        let delay = self.backoff.delay(failures);
                        let retry_at = now_ms().saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
                        store.delivery_failed(d.id, now, &why, Some(retry_at)).await?;
                        tracing::info!(alert = d.alert.id, webhook = %hook, attempts = failures, error = %why,
                            retry_in = ?delay, "alert delivery failed; will retry");
                        run.failed += 1;
                    }
                }
            }
        }
        Ok(run)
    }

    /// One request; the error is redacted (it may quote the URL).
    async fn send(&self, hook: &Webhook, alert: &Alert, event: &str) -> Result<(), String> {
        let payload = hook.payload(alert, event);
        let mut req = self
            .client
            .post(hook.expose_url())
            .header(reqwest::header::CONTENT_TYPE, payload.content_type)
            .body(payload.body);
        for (name, value) in payload.headers {
            req = req.header(name, value);
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => Err(format!("the receiver answered HTTP {}", resp.status().as_u16())),
            Err(e) => Err(hook.redact(&format!("cannot reach the receiver: {}", error_chain(e.without_url())))),
        }
    }

    /// Runs until the returned handle is aborted: sends what is due, then
    /// sleeps until the next delivery is due (at most a minute) or `wake`
    /// is notified.
    pub fn spawn(self, store: Store, wake: Arc<Notify>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.deliver_due(&store).await {
                    tracing::warn!(error = %e, "alert delivery: cannot read the outbox");
                }
                let wait = match store.next_delivery_at().await {
                    Ok(Some(at)) => Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0).max(50)),
                    _ => Duration::from_secs(60),
                }
                .min(Duration::from_secs(60));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = wake.notified() => {}
                }
            }
        })
    }
}

/// The error and its sources on one line.
fn error_chain(e: reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let b = Backoff {
            first: Duration::from_secs(5),
            max: Duration::from_secs(60),
            give_up_after: Duration::from_secs(3600),
        };
        let delays: Vec<u64> = (1..=6).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 60, 60]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(60));
    }
}
