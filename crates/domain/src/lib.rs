//! tunerpool's domain: the types every stage shares, and their rules.
//!
//! Providers, accounts, channels and their sources ([`model`]), the
//! [`Secret`] a password travels in, a [`FieldError`] naming what is wrong
//! with an input, the events worth recording ([`event`]) and the clock
//! ([`time`]), the checks of provider URLs ([`location`]) and the one
//! redaction of credentials ([`redact`]), and the score of a source's
//! measured quality ([`quality`]). Plain data with validation and
//! (redacting) serialization: no I/O, no SQL, nothing of tunerpool below it. It exists so that the pure stages (`pool`) and the ones that
//! only need to *read* the catalog (`relay`, through its own narrow trait)
//! do not link the SQLite store; `tunerpool-catalog` stores these types and
//! re-exports them.

pub mod error;
pub mod event;
pub mod fields;
pub mod location;
pub mod model;
pub mod quality;
pub mod redact;
pub mod secret;
pub mod time;

pub use error::FieldError;
pub use event::{Level, NewEvent};
pub use model::*;
pub use secret::Secret;
pub use time::{days_left, now};
