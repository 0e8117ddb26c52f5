//! Merging several guides into one, streamed: channels mapped to the output's
//! ids, each output channel's programmes from one guide only.

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Read, Seek, Write};

use super::reader::{ElementKind, GuideReader};
use super::writer::GuideWriter;
use super::{ReadStats, XmltvError};

/// Input buffer per guide while merging.
const READ_BUF: usize = 64 * 1024;

/// Which channels of one guide go into the merged guide, and under which ids.
///
/// A guide's channel id (`<channel id>`, `<programme channel>`) maps to one
/// or more output ids; a channel that is not in the map is left out. It
/// exists because the ids a provider's guide uses are not always the ones
/// our playlist gives its channels (a channel merged from another provider,
/// a provider whose ids differ in case or suffix).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelMap {
    map: HashMap<String, Vec<String>>,
}

impl ChannelMap {
    /// An empty map (nothing is taken from the guide).
    pub fn new() -> Self {
        ChannelMap::default()
    }

    /// Takes the guide's channel `source_id` into the output as `output_id`
    /// (repeating a pair is harmless).
    pub fn insert(&mut self, source_id: impl Into<String>, output_id: impl Into<String>) {
        let outputs = self.map.entry(source_id.into()).or_default();
        let output_id = output_id.into();
        if !outputs.contains(&output_id) {
            outputs.push(output_id);
        }
    }

    /// The output ids of a guide channel (empty if it is not taken).
    pub fn get(&self, source_id: &str) -> &[String] {
        self.map.get(source_id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// How many guide channel ids are taken.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// `true` if nothing is taken from the guide.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// One guide to merge: something that can be read twice (a file), and which
/// of its channels to take.
#[derive(Debug)]
pub struct MergeSource<S> {
    /// Names the guide in [`SourceStats`] (e.g. `provider 3`).
    pub label: String,
    /// The guide, plain XML; read from its start, twice.
    pub input: S,
    /// Its channels to take, with their output ids.
    pub channels: ChannelMap,
}

/// What one guide contributed to a merge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// The source's label.
    pub label: String,
    /// `<channel>` elements written from it.
    pub channels: u64,
    /// `<programme>` elements written from it.
    pub programmes: u64,
    /// What reading it found (first pass: every element it holds).
    pub read: ReadStats,
    /// Why reading it stopped early, if it did (the merge goes on without it).
    pub error: Option<String>,
}

/// What a merge wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeStats {
    /// `<channel>` elements written (including stubs).
    pub channels: u64,
    /// Of those, minimal ones written for ids that had programmes but no
    /// `<channel>` element in their guide.
    pub stub_channels: u64,
    /// `<programme>` elements written.
    pub programmes: u64,
    /// Per source, in order.
    pub sources: Vec<SourceStats>,
}

/// Merges `sources` into one guide written to `out`, streaming: memory use
/// does not depend on the size of the guides.
///
/// The output is one `<tv>` document: all `<channel>` elements first, then
/// all `<programme>` elements, as XMLTV requires. Only channels in a
/// source's [`ChannelMap`] are taken, under their output ids (`id=` and
/// `channel=` rewritten; everything else copied as it was, see
/// [`GuideWriter`]). When several sources (or one source twice) have a
/// channel for the same output id, the first one wins and the programmes of
/// that output id come from the winning source only, so that programmes
/// never overlap. An output id whose programmes appear in a source without a
/// `<channel>` element gets a minimal channel element.
///
/// Because channels must precede programmes and nothing is buffered, each
/// source is read twice: first for its channels, then for its programmes.
/// A source that cannot be read is reported in its [`SourceStats`] and
/// skipped; only a failure to write `out` (e.g. the client went away) stops
/// the merge.
pub fn merge<S: Read + Seek, W: Write>(sources: &mut [MergeSource<S>], out: W) -> Result<MergeStats, XmltvError> {
    let mut writer = GuideWriter::new(out).map_err(XmltvError::Write)?;
    let mut stats = MergeStats {
        sources: sources.iter().map(|s| SourceStats { label: s.label.clone(), ..SourceStats::default() }).collect(),
        ..MergeStats::default()
    };
    // Output id → index of the source whose channel (and programmes) it takes.
    let mut winner: HashMap<String, usize> = HashMap::new();
    // Output ids with programmes but no channel element yet, in first-seen order.
    let mut orphan_order: Vec<(String, usize)> = Vec::new();
    let mut orphan_seen: HashSet<String> = HashSet::new();

    // Pass 1: channels.
    for (i, src) in sources.iter_mut().enumerate() {
        let s = &mut stats.sources[i];
        let mut reader = match open_pass(&mut src.input) {
            Ok(r) => r,
            Err(e) => {
                s.error = Some(e.to_string());
                continue;
            }
        };
        loop {
            let next = reader.next_element_where(|start| {
                let outputs = src.channels.get(start.key);
                match start.kind {
                    ElementKind::Channel => outputs.iter().any(|o| !winner.contains_key(o)),
                    ElementKind::Programme => {
                        for o in outputs {
                            if orphan_seen.insert(o.clone()) {
                                orphan_order.push((o.clone(), i));
                            }
                        }
                        false
                    }
                }
            });
            let element = match next {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(e) => {
                    s.error = Some(e.to_string());
                    break;
                }
            };
            for o in src.channels.get(element.key()) {
                if winner.contains_key(o) {
                    continue;
                }
                winner.insert(o.clone(), i);
                let rename = (o != element.key()).then_some(o.as_str());
                writer.write(&element, rename).map_err(XmltvError::Write)?;
                s.channels += 1;
                stats.channels += 1;
            }
        }
        s.read = reader.stats().clone();
    }

    for (o, i) in orphan_order {
        if winner.contains_key(&o) {
            continue;
        }
        writer.write_channel_stub(&o, &o).map_err(XmltvError::Write)?;
        winner.insert(o, i);
        stats.channels += 1;
        stats.stub_channels += 1;
    }

    // Pass 2: programmes.
    for (i, src) in sources.iter_mut().enumerate() {
        let s = &mut stats.sources[i];
        let wins = |o: &&String| winner.get(*o) == Some(&i);
        let channels = &src.channels;
        let mut reader = match open_pass(&mut src.input) {
            Ok(r) => r,
            Err(e) => {
                s.error.get_or_insert(e.to_string());
                continue;
            }
        };
        loop {
            let next = reader.next_element_where(|start| {
                start.kind == ElementKind::Programme && channels.get(start.key).iter().any(|o| wins(&o))
            });
            let element = match next {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(e) => {
                    s.error.get_or_insert(e.to_string());
                    break;
                }
            };
            for o in channels.get(element.key()).iter().filter(wins) {
                let rename = (o != element.key()).then_some(o.as_str());
                writer.write(&element, rename).map_err(XmltvError::Write)?;
                s.programmes += 1;
                stats.programmes += 1;
            }
        }
    }
    writer.finish().map_err(XmltvError::Write)?;
    Ok(stats)
}

/// Starts one pass over a source: rewound, buffered, decoded.
fn open_pass<S: Read + Seek>(input: &mut S) -> Result<GuideReader<BufReader<&mut S>>, XmltvError> {
    input.rewind().map_err(XmltvError::Read)?;
    GuideReader::new(BufReader::with_capacity(READ_BUF, input))
}

impl<S: Read + Seek> MergeSource<S> {
    /// A source named `label` reading `input`, taking `channels`.
    pub fn new(label: impl Into<String>, input: S, channels: ChannelMap) -> Self {
        MergeSource { label: label.into(), input, channels }
    }
}
