//! tunerpool's catalog: what providers offer and how to reach it.
//!
//! Second stage of the data flow (provider → **catalog** → pool → relay →
//! viewer). It stores the domain types (defined in `tunerpool-domain`,
//! re-exported here as [`model`]) in the store ([`store`]: SQLite, or PostgreSQL through [`db`]), and owns
//! the provider sync ([`sync`]) that pulls a provider's
//! catalog through the `upstream` crate and writes it in batches, keeping ids
//! stable across re-syncs and the previous catalog when a sync fails; and
//! the provider guides ([`epg`]): where they come from and are kept, and
//! which guide channels feed which of our channels; and the [`lineup`]: the
//! user's channels, each with sources at any provider, kept in step by every
//! sync; the [`history`] of accounts, the pool and channel views (bounded,
//! downsampled) and the [`alerts`] record with its delivery outbox; and the [`quality`] of live sources, as the relay measured them; and [`copy`], a SQLite catalog copied into PostgreSQL (moving to a cluster).

pub mod alerts;
pub mod cache;
pub mod copy;
pub mod db;
pub mod details;
pub mod epg;
pub mod error;
pub mod events;
pub mod history;
pub mod lineup;
pub mod outputs;
pub mod quality;
pub mod store;
pub mod sync;
pub mod users;

pub use db::Db;
pub use error::{CatalogError, FieldError};
pub use events::{Event, EventQuery, Level, NewEvent};
pub use model::*;
pub use quality::{NewQuality, ProbeScope, SourceRef, StoredQuality};
pub use secret::Secret;
pub use store::{now, Store, StoreUrl};
/// The domain types, stored here; see `tunerpool-domain`.
pub use tunerpool_domain::{days_left, model, secret};
pub use users::{User, UserPatch, UserStatus};
