//! Streamed listing bodies: a catalog read page by page (keyset on the
//! row id; live channels on their lineup number), each item written into a buffer that is sent in ~64 KiB chunks.
//! A 200 000-entry playlist never sits in memory; memory stays flat at one
//! page of rows plus one chunk.

use std::collections::VecDeque;
use std::future::Future;

use axum::body::Body;
use bytes::Bytes;
use tunerpool_catalog::CatalogError;

/// Rows read per query.
pub(crate) const PAGE: u32 = 1000;
/// Bytes per body chunk.
const CHUNK: usize = 64 * 1024;

/// The pieces of a paged body.
pub(crate) struct Paged<F, W> {
    /// Written first (e.g. `#EXTM3U …` or `[`).
    pub head: Vec<u8>,
    /// Written last (e.g. `]`).
    pub tail: &'static [u8],
    /// Written between two items (e.g. `,`).
    pub separator: &'static [u8],
    /// Reads the page of rows after this id.
    pub fetch: F,
    /// Writes one row.
    pub write: W,
}

struct State<T, F, W> {
    paged: Paged<F, W>,
    /// The next page, already being read while this one is written: the
    /// store works on its own thread, so reading and writing overlap.
    next: Option<tokio::task::JoinHandle<Result<Vec<T>, CatalogError>>>,
    buf: Vec<u8>,
    ready: VecDeque<Bytes>,
    first: bool,
    done: bool,
    _rows: std::marker::PhantomData<fn() -> T>,
}

/// Something a listing pages over.
pub(crate) trait Keyed {
    fn key(&self) -> i64;
}

/// Live channels are listed in lineup-number order, so they page on it.
impl Keyed for tunerpool_catalog::outputs::LiveItem {
    fn key(&self) -> i64 {
        self.number
    }
}
impl Keyed for tunerpool_catalog::outputs::MovieItem {
    fn key(&self) -> i64 {
        self.id
    }
}
impl Keyed for tunerpool_catalog::outputs::SeriesItem {
    fn key(&self) -> i64 {
        self.id
    }
}

/// A response body that reads and writes the listing as the client takes it.
pub(crate) fn paged<T, F, Fut, W>(paged: Paged<F, W>) -> Body
where
    T: Keyed + Send + 'static,
    F: FnMut(i64) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Vec<T>, CatalogError>> + Send + 'static,
    W: FnMut(&T, &mut Vec<u8>) + Send + 'static,
{
    let mut buf = Vec::with_capacity(CHUNK + 4096);
    buf.extend_from_slice(&paged.head);
    let mut paged = paged;
    let first_page = tokio::spawn((paged.fetch)(0));
    let state: State<T, F, W> = State {
        paged,
        next: Some(first_page),
        buf,
        ready: VecDeque::new(),
        first: true,
        done: false,
        _rows: std::marker::PhantomData,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(b) = st.ready.pop_front() {
                return Some((Ok::<_, std::io::Error>(b), st));
            }
            if st.done {
                return None;
            }
            let next = st.next.take()?;
            let fetched = next.await.unwrap_or_else(|e| Err(CatalogError::Internal(format!("page reader: {e}"))));
            let rows = match fetched {
                Ok(rows) => rows,
                Err(e) => {
                    // The client sees a cut body; there is no status to change any more.
                    tracing::error!(error = %e, "listing failed mid-response");
                    st.done = true;
                    return Some((Err(std::io::Error::other("catalog read failed")), st));
                }
            };
            if rows.len() >= PAGE as usize {
                if let Some(last) = rows.last() {
                    st.next = Some(tokio::spawn((st.paged.fetch)(last.key())));
                }
            }
            for row in &rows {
                if !st.first {
                    st.buf.extend_from_slice(st.paged.separator);
                }
                st.first = false;
                (st.paged.write)(row, &mut st.buf);
                if st.buf.len() >= CHUNK {
                    let full = std::mem::replace(&mut st.buf, Vec::with_capacity(CHUNK + 4096));
                    st.ready.push_back(Bytes::from(full));
                }
            }
            if st.next.is_none() {
                st.done = true;
                st.buf.extend_from_slice(st.paged.tail);
                let rest = std::mem::take(&mut st.buf);
                st.ready.push_back(Bytes::from(rest));
            }
        }
    });
    Body::from_stream(stream)
}
