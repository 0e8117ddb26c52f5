//! The live listings (`get.php`, `get_live_streams`) from the catalog's
//! materialized listing (`live_listing`, see `0011_live_listing.sql`): each
//! channel's entries are written once, when the listing is rebuilt, and a
//! request only joins a page of them in SQLite and passes the text on —
//! no per-channel look-ups, decoding or formatting per request.
//!
//! While the materialized listing is stale (a write since its last
//! rebuild), a listing takes the lineup's query as before and a rebuild
//! starts in the background; [`keep_fresh`] also rebuilds it soon after
//! any write, so that the next listing is fast. Both ways write the same
//! bytes: the entries are rendered by the same functions ([`Renderer`]).

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use tunerpool_catalog::outputs::{ItemFilter, LiveFormat, LiveItem, LivePage, LiveRenderer, RenderedLive};
use tunerpool_catalog::{CatalogError, Store};

use super::body::PAGE;

/// Writes the materialized listing's entries with the outputs' own writers.
pub(crate) struct Renderer;

impl LiveRenderer for Renderer {
    fn render(&self, item: &LiveItem, out: &mut RenderedLive) {
        super::m3u::live_head(item, false, &mut out.m3u);
        super::m3u::live_head(item, true, &mut out.m3u_plus);
        let mut json = Vec::with_capacity(256);
        super::xtream::live_row(item, &mut json);
        out.xtream = String::from_utf8(json).unwrap_or_default();
    }
}

/// Whether a listing can be read from the materialized listing now. If not,
/// a rebuild starts in the background (after any running one) and the
/// caller takes the lineup's query.
pub(crate) async fn ready(store: &Store) -> bool {
    match store.live_listing_fresh().await {
        Ok(true) => true,
        Ok(false) => {
            let store = store.clone();
            tokio::spawn(async move { rebuild(&store).await });
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "live listing state unreadable; listing from the lineup");
            false
        }
    }
}

async fn rebuild(store: &Store) {
    let started = std::time::Instant::now();
    match store.rebuild_live_listing(&Renderer).await {
        Ok(true) => tracing::debug!(ms = started.elapsed().as_millis() as u64, "live listing rebuilt"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "live listing rebuild failed; listings use the lineup's query"),
    }
}

/// Keeps the materialized listing fresh: every `every`, a rebuild if
/// anything (this process or another writing the same database, such as
/// the `tunerpool` commands) changed what listings show. Runs until the
/// returned task is aborted.
pub fn keep_fresh(store: Store, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if matches!(store.live_listing_fresh().await, Ok(false)) {
                rebuild(&store).await;
            }
        }
    })
}

/// The pieces of a listing body from the materialized listing.
pub(crate) struct Listing {
    /// Written first (`#EXTM3U …`, `[`).
    pub head: Vec<u8>,
    /// Written last (`]`).
    pub tail: &'static [u8],
    /// What the catalog's pages put before each entry (`,` before each JSON
    /// object), dropped before the first entry.
    pub separator: &'static [u8],
    pub format: LiveFormat,
    /// For M3U: each entry's URL is `{prefix}{channel id}{suffix}`.
    pub url: (String, String),
    pub filter: ItemFilter,
}

struct State {
    store: Store,
    listing: Listing,
    /// The next page, already being read while this one is sent.
    next: Option<tokio::task::JoinHandle<Result<LivePage, CatalogError>>>,
    head_sent: bool,
    first: bool,
    done: bool,
}

fn fetch(store: &Store, l: &Listing, after: i64) -> tokio::task::JoinHandle<Result<LivePage, CatalogError>> {
    let (store, f, format, url) = (store.clone(), l.filter.clone(), l.format, l.url.clone());
    tokio::spawn(async move { store.live_listing_page(&f, format, (&url.0, &url.1), after, PAGE).await })
}

/// A response body that sends the listing page by page: each page is one
/// text joined by SQLite, sent as one chunk; memory holds two pages at most.
pub(crate) fn body(store: Store, listing: Listing) -> Body {
    let next = Some(fetch(&store, &listing, 0));
    let state = State { store, listing, next, head_sent: false, first: true, done: false };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        if !st.head_sent {
            st.head_sent = true;
            let head = std::mem::take(&mut st.listing.head);
            if !head.is_empty() {
                return Some((Ok::<_, std::io::Error>(Bytes::from(head)), st));
            }
        }
        loop {
            if st.done {
                return None;
            }
            let Some(next) = st.next.take() else {
                st.done = true;
                if st.listing.tail.is_empty() {
                    return None;
                }
                return Some((Ok(Bytes::from_static(st.listing.tail)), st));
            };
            let page = match next.await.unwrap_or_else(|e| Err(CatalogError::Internal(format!("page reader: {e}")))) {
                Ok(page) => page,
                Err(e) => {
                    // The client sees a cut body; there is no status to change any more.
                    tracing::error!(error = %e, "listing failed mid-response");
                    st.done = true;
                    return Some((Err(std::io::Error::other("catalog read failed")), st));
                }
            };
            if page.rows >= PAGE {
                st.next = Some(fetch(&st.store, &st.listing, page.last));
            }
            if page.text.is_empty() {
                continue;
            }
            let mut text = Bytes::from(page.text.into_bytes());
            if st.first && text.starts_with(st.listing.separator) {
                // A view of the same page: no copy.
                text = text.slice(st.listing.separator.len()..);
            }
            st.first = false;
            return Some((Ok(text), st));
        }
    });
    Body::from_stream(stream)
}
