//! Talking to IPTV providers.
//!
//! This crate is the first stage of tunerpool's one-way data flow
//! (provider → catalog → pool → relay → viewer). It knows how to ask an Xtream
//! Codes panel for its account details and catalog, how to download an M3U
//! playlist and how to store a provider's XMLTV guide ([`epg`]), and it hands
//! the results on as *streams of batches* so that a 200 000-entry catalog
//! never sits whole in memory. It does not know about the
//! store: the catalog crate drives it.
//!
//! Every error this crate produces has credentials removed (see [`redact`]):
//! an Xtream URL carries the password in its query or path, and reqwest puts
//! the URL into its error messages.

pub mod batches;
pub mod cap;
pub mod epg;
pub mod error;
pub mod http;
pub mod m3u;
pub mod owner_only;
pub mod xtream;

/// The one redaction of credentials, from `tunerpool-domain` (pure, so the
/// domain types can redact when serialized); every crate reaches it here too.
pub use tunerpool_domain::redact;

pub use cap::{BodyKind, Caps};
pub use error::UpstreamError;
pub use http::{HttpSettings, UpstreamHttp};
