//! tunerpool's catalog: what providers offer and how to reach it.
//!
//! Second stage of the data flow (provider → **catalog** → pool → relay →
//! viewer). It owns the domain types ([`model`]), the SQLite store
//! ([`store`]) and the provider sync ([`sync`]) that pulls a provider's
//! catalog through the `upstream` crate and writes it in batches, keeping ids
//! stable across re-syncs and the previous catalog when a sync fails; and
//! the provider guides ([`epg`]): where they come from and are kept, and
//! which guide channels feed which of our channels; and the [`lineup`]: the
//! user's channels, each with sources at any provider, kept in step by every
//! sync.

pub mod details;
pub mod epg;
pub mod error;
pub mod events;
pub mod lineup;
pub mod model;
pub mod outputs;
pub mod secret;
pub mod store;
pub mod sync;
pub mod users;

pub use error::{CatalogError, FieldError};
pub use events::{Event, EventQuery, Level, NewEvent};
pub use model::*;
pub use secret::Secret;
pub use store::{now, Store};
pub use users::{User, UserPatch, UserStatus};
