//! XMLTV programme guides: a streaming reader, a writer that copies elements
//! through unchanged, and a merger of several guides into one.
//!
//! Provider guides are often hundreds of megabytes, so nothing here holds a
//! whole guide: [`GuideReader`] yields one `<channel>` or `<programme>`
//! element at a time (or skips the ones a filter does not want without
//! keeping them), [`GuideWriter`] writes elements one at a time, and
//! [`merge`] combines guides with two passes over each source instead of
//! buffering. Everything works over `std::io` traits; decompressing gzip and
//! opening files is the caller's business.
//!
//! Real guides are lenient about XML, so the reader is too (built on
//! `quick-xml`): a BOM, a DOCTYPE, a declared non-UTF-8 encoding, invalid
//! UTF-8, control characters, HTML entities, bare `&`, unclosed or stray
//! tags, a file cut off in the middle — all are read as far as they make
//! sense, elements that cannot be used are skipped and counted in
//! [`ReadStats`], and nothing panics. Times are never reinterpreted:
//! `start="20221129000000 -0300"` is written out exactly as read, whatever
//! its offset (or lack of one); [`parse_time`] reads one when a caller needs
//! the instant.

mod input;
mod merge;
mod reader;
mod text;
mod time;
mod writer;

use std::io::BufRead;

pub use merge::{merge, ChannelMap, MergeSource, MergeStats, SourceStats};
pub use reader::{Element, ElementKind, ElementStart, GuideReader};
pub use time::{parse_time, Timestamp};
pub use writer::GuideWriter;

/// How many problems [`ReadStats::problems`] keeps.
const MAX_PROBLEMS: usize = 10;

/// Why a guide could not be read or written. Bad XML is not an error (it is
/// counted in [`ReadStats`]); only the underlying I/O is.
#[derive(Debug, thiserror::Error)]
pub enum XmltvError {
    /// Reading the guide failed (a file error, a corrupt gzip stream).
    #[error("reading the guide failed: {0}")]
    Read(#[source] std::io::Error),
    /// Writing the output failed (the disk is full, the client went away).
    #[error("writing the guide failed: {0}")]
    Write(#[source] std::io::Error),
}

/// What reading a guide found, so that a caller can report how much of a
/// broken guide was usable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Usable `<channel>` elements (whether or not the filter wanted them).
    pub channels: u64,
    /// Usable `<programme>` elements (whether or not the filter wanted them).
    pub programmes: u64,
    /// Elements left out: no channel id, a programme without `start`, cut off
    /// by the end of the input or by a parse error.
    pub skipped: u64,
    /// Nesting repaired: unclosed tags closed, stray end tags and impossible
    /// tags dropped.
    pub repaired: u64,
    /// XML syntax errors the parser reported (and was read past).
    pub errors: u64,
    /// The input ended (or became unreadable XML) inside an element.
    pub truncated: bool,
    /// The first few problems, for a log line or a status page.
    pub problems: Vec<String>,
}

impl ReadStats {
    fn note(&mut self, problem: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(problem);
        }
    }
}

/// A text in a language, such as a `<title lang="es">`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text {
    /// The `lang` attribute, if any.
    pub lang: Option<String>,
    /// The text, entities resolved, trimmed.
    pub value: String,
}

/// A `<channel>` element, read into the fields tunerpool looks at (the
/// writer copies the element itself, so nothing is lost by this reading).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Channel {
    /// `id`: what programmes refer to.
    pub id: String,
    /// `<display-name>`s, in order.
    pub display_names: Vec<Text>,
    /// `<icon src>`s.
    pub icons: Vec<String>,
    /// `<url>`s.
    pub urls: Vec<String>,
}

/// A `<programme>` element, read into the fields tunerpool looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Programme {
    /// `channel`: the channel id it belongs to.
    pub channel: String,
    /// `start` as written (see [`parse_time`]).
    pub start: String,
    /// `stop` as written, if any.
    pub stop: Option<String>,
    /// `<title>`s (several languages possible).
    pub titles: Vec<Text>,
    /// `<sub-title>`s.
    pub sub_titles: Vec<Text>,
    /// `<desc>`s.
    pub descs: Vec<Text>,
    /// `<category>`s.
    pub categories: Vec<Text>,
    /// `<icon src>`s.
    pub icons: Vec<String>,
}

/// One element of a guide, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A `<channel>`.
    Channel(Channel),
    /// A `<programme>`.
    Programme(Programme),
}

/// Reads a whole guide, handing each channel and programme to `f` as it is
/// read, and returns what was found.
pub fn read_guide<R: BufRead>(input: R, mut f: impl FnMut(Item)) -> Result<ReadStats, XmltvError> {
    let mut reader = GuideReader::new(input)?;
    while let Some(el) = reader.next_element()? {
        match el.kind() {
            ElementKind::Channel => f(Item::Channel(el.to_channel().unwrap_or_default())),
            ElementKind::Programme => f(Item::Programme(el.to_programme().unwrap_or_default())),
        }
    }
    Ok(reader.stats().clone())
}

#[cfg(test)]
mod tests;
