//! The streaming guide reader: `<channel>` and `<programme>` elements, one at
//! a time, repaired where real guides are broken.

use std::io::BufRead;

use quick_xml::events::{BytesEnd, BytesStart, Event};
use quick_xml::Reader;

use super::input::Utf8Input;
use super::text::{is_valid_name, text_of, unescape_lenient};
use super::{Channel, Programme, ReadStats, Text, XmltvError};

/// The two kinds of element a guide is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElementKind {
    /// `<channel id="…">`: a channel the guide has programmes for.
    Channel,
    /// `<programme start="…" channel="…">`: one broadcast.
    Programme,
}

impl ElementKind {
    fn of(name: &[u8]) -> Option<ElementKind> {
        match name {
            b"channel" => Some(ElementKind::Channel),
            b"programme" => Some(ElementKind::Programme),
            _ => None,
        }
    }

    /// The tag name.
    pub fn name(self) -> &'static str {
        match self {
            ElementKind::Channel => "channel",
            ElementKind::Programme => "programme",
        }
    }

    /// The attribute that links the element to a channel: `id` on a channel,
    /// `channel` on a programme.
    pub fn key_attr(self) -> &'static str {
        match self {
            ElementKind::Channel => "id",
            ElementKind::Programme => "channel",
        }
    }
}

/// The start tag of an element, shown to the filter of
/// [`GuideReader::next_element_where`] before anything else of the element is
/// read, so that unwanted elements are skipped without being kept.
pub struct ElementStart<'a> {
    /// Channel or programme.
    pub kind: ElementKind,
    /// The channel id (`id` of a channel, `channel` of a programme), unescaped.
    pub key: &'a str,
    tag: &'a BytesStart<'a>,
}

impl ElementStart<'_> {
    /// Another attribute of the start tag, unescaped.
    pub fn attr(&self, name: &str) -> Option<String> {
        attr(self.tag, name)
    }
}

/// One whole `<channel>` or `<programme>` element, held as the parser's
/// events so that it can be written out again as it came (see
/// [`super::GuideWriter`]) or read into a typed [`Channel`] or [`Programme`].
///
/// Its start and end tags are balanced: tags left open in the input are
/// closed, stray end tags and tags with impossible names are dropped.
#[derive(Debug, Clone)]
pub struct Element {
    kind: ElementKind,
    key: String,
    pub(super) events: Vec<Event<'static>>,
}

impl Element {
    /// Channel or programme.
    pub fn kind(&self) -> ElementKind {
        self.kind
    }

    /// The channel id: `id` of a channel, `channel` of a programme.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// An attribute of the element's start tag, unescaped.
    pub fn attr(&self, name: &str) -> Option<String> {
        self.start_tag().and_then(|t| attr(t, name))
    }

    pub(super) fn start_tag(&self) -> Option<&BytesStart<'static>> {
        match self.events.first() {
            Some(Event::Start(t) | Event::Empty(t)) => Some(t),
            _ => None,
        }
    }

    /// The direct children of the element, with their content.
    fn children(&self) -> Vec<Child<'_>> {
        let mut out = Vec::new();
        let mut depth = 0usize;
        let mut open: Option<usize> = None; // index of the open child's start tag
        for (i, ev) in self.events.iter().enumerate().skip(1) {
            match ev {
                Event::Start(_) => {
                    depth += 1;
                    if depth == 1 {
                        open = Some(i);
                    }
                }
                Event::Empty(t) if depth == 0 => out.push(Child { tag: t, events: &[] }),
                Event::End(_) => {
                    if depth == 1 {
                        if let Some(start) = open.take() {
                            if let Some(Event::Start(t)) = self.events.get(start) {
                                out.push(Child { tag: t, events: &self.events[start + 1..i] });
                            }
                        }
                    }
                    depth = depth.saturating_sub(1);
                }
                _ => {}
            }
        }
        out
    }

    /// This element as a typed channel (`None` for a programme).
    pub fn to_channel(&self) -> Option<Channel> {
        if self.kind != ElementKind::Channel {
            return None;
        }
        let mut ch = Channel { id: self.key.clone(), ..Channel::default() };
        for c in self.children() {
            match c.tag.name().as_ref() {
                b"display-name" => ch.display_names.push(c.text()),
                b"icon" => ch.icons.extend(attr(c.tag, "src")),
                b"url" => ch.urls.push(c.text().value),
                _ => {}
            }
        }
        Some(ch)
    }

    /// This element as a typed programme (`None` for a channel).
    pub fn to_programme(&self) -> Option<Programme> {
        if self.kind != ElementKind::Programme {
            return None;
        }
        let mut p = Programme {
            channel: self.key.clone(),
            start: self.attr("start").unwrap_or_default(),
            stop: self.attr("stop"),
            ..Programme::default()
        };
        for c in self.children() {
            match c.tag.name().as_ref() {
                b"title" => p.titles.push(c.text()),
                b"sub-title" => p.sub_titles.push(c.text()),
                b"desc" => p.descs.push(c.text()),
                b"category" => p.categories.push(c.text()),
                b"icon" => p.icons.extend(attr(c.tag, "src")),
                _ => {}
            }
        }
        Some(p)
    }
}

struct Child<'a> {
    tag: &'a BytesStart<'static>,
    events: &'a [Event<'static>],
}

impl Child<'_> {
    fn text(&self) -> Text {
        Text { lang: attr(self.tag, "lang").filter(|l| !l.is_empty()), value: text_of(self.events) }
    }
}

/// An attribute of `tag`, found leniently (unquoted values, duplicates:
/// first wins) and unescaped leniently (unknown entities stay as written).
pub(super) fn attr(tag: &BytesStart<'_>, name: &str) -> Option<String> {
    tag.html_attributes().with_checks(false).flatten().find(|a| a.key.as_ref() == name.as_bytes()).map(|a| {
        let raw = String::from_utf8_lossy(&a.value);
        unescape_lenient(&raw).into_owned()
    })
}

/// Reads a guide element by element. Memory use is one element at a time,
/// whatever the guide's size.
///
/// Never panics and never fails on bad XML: elements that cannot be used
/// (a channel without `id`, a programme without `channel` or `start`, an
/// element cut off by the end of the input) are skipped and counted in
/// [`ReadStats`]; broken nesting is repaired and counted. Only reading the
/// input itself can fail.
pub struct GuideReader<R: BufRead> {
    /// Taken out only while a parser is replaced after a syntax error.
    reader: Option<Reader<Utf8Input<R>>>,
    buf: Vec<u8>,
    /// The start of an element found while the previous one was still open.
    pending: Option<Event<'static>>,
    stats: ReadStats,
    /// Input bytes consumed by parsers replaced after a syntax error.
    consumed_before: u64,
    last_error_at: Option<u64>,
    /// A parse error met by `next_raw`, to be dealt with by its caller.
    error: Option<quick_xml::Error>,
    done: bool,
}

/// How collecting an element's events ended.
enum Collected {
    Complete,
    /// Cut off by the end of input or a parse error: the element is dropped.
    Dropped,
}

/// What one event means while an unwanted element is skipped.
enum Skip {
    Continue,
    Error,
    /// The element ended.
    End,
    /// The element ended at `</tv>` without its own end tag.
    EndAtTv,
    /// The next element starts (kept to be read next).
    Boundary(Event<'static>),
    Eof,
}

fn parser<R: BufRead>(input: R) -> Reader<R> {
    let mut reader = Reader::from_reader(input);
    let config = reader.config_mut();
    config.allow_dangling_amp = true;
    config.allow_unmatched_ends = true;
    config.check_end_names = false;
    config.check_comments = false;
    config.trim_text(false);
    reader
}

fn read_error(e: &std::io::Error) -> XmltvError {
    XmltvError::Read(std::io::Error::new(e.kind(), e.to_string()))
}

impl<R: BufRead> GuideReader<R> {
    /// Starts reading `input` (plain XML: decompress gzip before). Reads the
    /// first kilobyte to find the encoding.
    pub fn new(input: R) -> Result<Self, XmltvError> {
        let input = Utf8Input::new(input).map_err(XmltvError::Read)?;
        Ok(GuideReader {
            reader: Some(parser(input)),
            buf: Vec::with_capacity(4096),
            pending: None,
            stats: ReadStats::default(),
            consumed_before: 0,
            last_error_at: None,
            error: None,
            done: false,
        })
    }

    /// What has been read so far.
    pub fn stats(&self) -> &ReadStats {
        &self.stats
    }

    /// The next channel or programme, or `None` at the end of the guide.
    pub fn next_element(&mut self) -> Result<Option<Element>, XmltvError> {
        self.next_element_where(|_| true)
    }

    /// The next channel or programme that `want` accepts; the others are
    /// skipped without being kept (but still counted in the stats).
    pub fn next_element_where(
        &mut self,
        mut want: impl FnMut(&ElementStart<'_>) -> bool,
    ) -> Result<Option<Element>, XmltvError> {
        loop {
            let (tag, empty) = match self.pending.take() {
                Some(Event::Start(t)) => (t, false),
                Some(Event::Empty(t)) => (t, true),
                Some(_) => continue,
                None => {
                    if self.done {
                        return Ok(None);
                    }
                    // Outside elements only element starts matter: borrow, own only those.
                    let start = match self.next_raw()? {
                        Some(Event::Start(t)) if ElementKind::of(t.name().as_ref()).is_some() => {
                            (t.into_owned(), false)
                        }
                        Some(Event::Empty(t)) if ElementKind::of(t.name().as_ref()).is_some() => (t.into_owned(), true),
                        None => {
                            self.flush_error();
                            continue;
                        }
                        _ => continue,
                    };
                    start
                }
            };
            let Some(kind) = ElementKind::of(tag.name().as_ref()) else { continue };
            let key = attr(&tag, kind.key_attr()).map(|k| k.trim().to_string()).unwrap_or_default();
            let problem = if key.is_empty() {
                Some(format!("a <{}> without {}=", kind.name(), kind.key_attr()))
            } else if kind == ElementKind::Programme && attr(&tag, "start").is_none_or(|s| s.trim().is_empty()) {
                Some(format!("a <programme> of channel {key:?} without start="))
            } else {
                None
            };
            if let Some(problem) = problem {
                self.stats.note(problem);
                self.stats.skipped += 1;
                if !empty {
                    self.skip_rest(kind)?;
                }
                continue;
            }
            if !want(&ElementStart { kind, key: &key, tag: &tag }) {
                self.count(kind);
                if !empty {
                    self.skip_rest(kind)?;
                }
                continue;
            }
            let mut events = Vec::with_capacity(if empty { 1 } else { 16 });
            events.push(if empty { Event::Empty(tag) } else { Event::Start(tag) });
            if !empty {
                if let Collected::Dropped = self.collect_rest(kind, &mut events)? {
                    self.stats.skipped += 1;
                    continue;
                }
            }
            self.count(kind);
            return Ok(Some(Element { kind, key, events }));
        }
    }

    fn count(&mut self, kind: ElementKind) {
        match kind {
            ElementKind::Channel => self.stats.channels += 1,
            ElementKind::Programme => self.stats.programmes += 1,
        }
    }

    /// The next event, borrowed from the buffer. `Eof` at the end (and
    /// sets `done`); `None` after a parse error (see [`Self::flush_error`]).
    fn next_raw(&mut self) -> Result<Option<Event<'_>>, XmltvError> {
        self.buf.clear();
        let Some(reader) = self.reader.as_mut() else {
            self.done = true;
            return Ok(Some(Event::Eof));
        };
        match reader.read_event_into(&mut self.buf) {
            Ok(Event::Eof) => {
                self.done = true;
                Ok(Some(Event::Eof))
            }
            Ok(e) => Ok(Some(e)),
            Err(quick_xml::Error::Io(e)) => Err(read_error(&e)),
            Err(e) => {
                self.error = Some(e);
                Ok(None)
            }
        }
    }

    /// Deals with the parse error [`Self::next_raw`] stashed, if any.
    fn flush_error(&mut self) {
        if let Some(e) = self.error.take() {
            self.parse_error(e);
        }
    }

    /// Counts a parse error. quick-xml stops for good after a syntax error
    /// (most are the input ending inside markup, but `<!x` is one too), so a
    /// fresh parser takes over where it stopped. Reading stops if the input
    /// did not advance since the previous error.
    fn parse_error(&mut self, e: quick_xml::Error) {
        let Some(reader) = self.reader.take() else { return };
        let at = self.consumed_before + reader.error_position();
        self.stats.errors += 1;
        self.stats.note(format!("XML error at byte {at}: {e}"));
        let pos = self.consumed_before + reader.buffer_position();
        if self.last_error_at.is_some_and(|last| pos <= last) {
            self.stats.truncated = true;
            self.done = true;
            return;
        }
        self.last_error_at = Some(pos);
        if matches!(e, quick_xml::Error::Syntax(_)) {
            self.consumed_before = pos;
            self.reader = Some(parser(reader.into_inner()));
        } else {
            self.reader = Some(reader);
        }
    }

    /// Skips to the end of an element of `kind` whose start has been read.
    /// Only depth-free facts are used, so that a missing end tag deep inside
    /// cannot swallow the rest of the guide: the element ends at its own end
    /// tag, at `</tv>`, or where the next channel or programme starts.
    fn skip_rest(&mut self, kind: ElementKind) -> Result<(), XmltvError> {
        loop {
            let step = match self.next_raw()? {
                None => Skip::Error,
                Some(Event::Start(t)) if ElementKind::of(t.name().as_ref()).is_some() => {
                    Skip::Boundary(Event::Start(t.into_owned()))
                }
                Some(Event::Empty(t)) if ElementKind::of(t.name().as_ref()).is_some() => {
                    Skip::Boundary(Event::Empty(t.into_owned()))
                }
                Some(Event::End(e)) if e.name().as_ref() == kind.name().as_bytes() => Skip::End,
                Some(Event::End(e)) if e.name().as_ref() == b"tv" => Skip::EndAtTv,
                Some(Event::Eof) => Skip::Eof,
                Some(_) => Skip::Continue,
            };
            match step {
                Skip::Continue => {}
                Skip::Error => self.flush_error(),
                Skip::End => return Ok(()),
                Skip::EndAtTv => {
                    self.stats.repaired += 1;
                    return Ok(());
                }
                Skip::Boundary(next) => {
                    self.stats.repaired += 1;
                    self.pending = Some(next);
                    return Ok(());
                }
                Skip::Eof => {
                    self.stats.truncated = true;
                    return Ok(());
                }
            }
        }
    }

    /// Reads the rest of an element of `kind` into `events`, balancing tags.
    fn collect_rest(&mut self, kind: ElementKind, events: &mut Vec<Event<'static>>) -> Result<Collected, XmltvError> {
        let mut open: Vec<Vec<u8>> = vec![kind.name().as_bytes().to_vec()];
        loop {
            let event = match self.next_raw()? {
                Some(e) => e.into_owned(),
                None => {
                    // The element is broken beyond repair where the parser gave up.
                    self.flush_error();
                    return Ok(Collected::Dropped);
                }
            };
            if matches!(&event, Event::Start(t) | Event::Empty(t) if ElementKind::of(t.name().as_ref()).is_some()) {
                // The next element starts: this one was never closed.
                self.stats.repaired += 1;
                close_all(&mut open, events);
                self.pending = Some(event);
                return Ok(Collected::Complete);
            }
            if let Event::Start(_) | Event::Empty(_) = &event {
                // A tag inside a text-only element means its end tag was lost.
                while open.len() > 1 && open.last().is_some_and(|top| is_text_only(top)) {
                    self.stats.repaired += 1;
                    if let Some(n) = open.pop() {
                        events.push(end_tag(&n));
                    }
                }
            }
            match event {
                Event::Start(t) => {
                    if is_child_name(t.name().as_ref()) {
                        open.push(t.name().as_ref().to_vec());
                        events.push(Event::Start(t));
                    } else {
                        self.stats.repaired += 1;
                    }
                }
                Event::Empty(t) => {
                    if is_child_name(t.name().as_ref()) {
                        events.push(Event::Empty(t));
                    } else {
                        self.stats.repaired += 1;
                    }
                }
                Event::End(e) => {
                    let name = e.name();
                    if name.as_ref() == b"tv" {
                        self.stats.repaired += 1;
                        close_all(&mut open, events);
                        return Ok(Collected::Complete);
                    }
                    match open.iter().rposition(|n| n.as_slice() == name.as_ref()) {
                        Some(at) => {
                            self.stats.repaired += (open.len() - 1 - at) as u64;
                            while open.len() > at {
                                if let Some(n) = open.pop() {
                                    events.push(end_tag(&n));
                                }
                            }
                            if open.is_empty() {
                                return Ok(Collected::Complete);
                            }
                        }
                        None => self.stats.repaired += 1,
                    }
                }
                e @ (Event::Text(_) | Event::GeneralRef(_) | Event::CData(_)) => events.push(e),
                Event::Eof => {
                    self.stats.truncated = true;
                    self.stats.note(format!("the guide ends inside a <{}>", kind.name()));
                    return Ok(Collected::Dropped);
                }
                Event::Comment(_) | Event::PI(_) | Event::Decl(_) | Event::DocType(_) => {}
            }
        }
    }
}

/// A name an element inside a channel or programme can have (`tv` cannot:
/// its end tag would end the element).
fn is_child_name(name: &[u8]) -> bool {
    is_valid_name(name) && name != b"tv"
}

/// XMLTV elements that hold only text, so that a tag inside one can only
/// mean that its end tag is missing (or misspelled).
fn is_text_only(name: &[u8]) -> bool {
    matches!(
        name,
        b"title"
            | b"sub-title"
            | b"desc"
            | b"display-name"
            | b"category"
            | b"keyword"
            | b"date"
            | b"episode-num"
            | b"length"
            | b"country"
            | b"language"
            | b"orig-language"
            | b"url"
            | b"value"
    )
}

fn end_tag(name: &[u8]) -> Event<'static> {
    Event::End(BytesEnd::new(String::from_utf8_lossy(name).into_owned()))
}

fn close_all(open: &mut Vec<Vec<u8>>, events: &mut Vec<Event<'static>>) {
    while let Some(n) = open.pop() {
        events.push(end_tag(&n));
    }
}
