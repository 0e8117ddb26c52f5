//! tunerpool's alerts: what an operator must act on, told once, and sent
//! where the operator looks (ntfy, Gotify, Discord, Slack, Apprise, any
//! JSON receiver).
//!
//! Three steps, each its own module:
//! - [`check`] reads the store (accounts' expiry and auth, providers' sync
//!   status, the pool's recent refusals, downstream users' expiry) into
//!   conditions, and has the store record them (`catalog::alerts`): an alert
//!   opens once per condition and resolves when it no longer holds;
//! - the store queues one delivery per webhook for each opened (and, if
//!   wanted, resolved) alert, in the same transaction;
//! - [`deliver`] sends what is due, retrying with exponential backoff, in a
//!   task of its own.
//!
//! [`webhook`] parses the `alerts.webhooks` settings (`format:url`) and
//! builds each format's payload; webhook URLs are secrets and never shown.
//!
//! Sits beside `http` in the flow: it reads the catalog (the state the other
//! stages record), and the binary wires it.

pub mod check;
pub mod deliver;
pub mod webhook;

pub use check::{check, conditions, Rules};
pub use deliver::{Backoff, DeliverRun, Sender, SenderError};
pub use webhook::{Format, Webhook, WebhookError};
