//! Turning whatever bytes a guide arrives in into clean UTF-8 for the XML
//! parser, as a stream.
//!
//! Guides in the wild are declared UTF-8 but carry stray Latin-1 bytes, are
//! declared ISO-8859-1 (or windows-1251), start with a byte order mark, or hold
//! control characters that XML forbids. The parser and the writer downstream
//! are simpler and the merged output stays well-formed if all of that is
//! settled here, once: the declared (or BOM-sniffed) encoding is decoded to
//! UTF-8 with malformed sequences replaced by U+FFFD, the BOM is dropped, and
//! C0 control characters other than tab, LF and CR become spaces.

use std::io::{self, BufRead, Read};

use encoding_rs::{CoderResult, Decoder, Encoding, UTF_8};

/// How many bytes of the start are examined for an XML declaration.
const SNIFF: usize = 1024;
/// Size of the decoded-output buffer.
const OUT: usize = 64 * 1024;

/// A [`BufRead`] that yields the input decoded to UTF-8 (see the module docs).
pub(crate) struct Utf8Input<R> {
    inner: R,
    /// The sniffed start of the input, fed to the decoder before `inner`.
    head: Vec<u8>,
    head_pos: usize,
    decoder: Decoder,
    out: Box<[u8]>,
    out_pos: usize,
    out_len: usize,
    finished: bool,
}

impl<R: BufRead> Utf8Input<R> {
    /// Reads the first bytes of `inner` to find the encoding.
    pub(crate) fn new(mut inner: R) -> io::Result<Self> {
        let mut head = Vec::with_capacity(SNIFF);
        while head.len() < SNIFF {
            let buf = match inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                break;
            }
            let n = buf.len().min(SNIFF - head.len());
            head.extend_from_slice(&buf[..n]);
            inner.consume(n);
        }
        // BOM sniffing (in `new_decoder`) overrides the declaration.
        let decoder = declared_encoding(&head).unwrap_or(UTF_8).new_decoder();
        Ok(Utf8Input {
            inner,
            head,
            head_pos: 0,
            decoder,
            out: vec![0; OUT].into_boxed_slice(),
            out_pos: 0,
            out_len: 0,
            finished: false,
        })
    }

    fn refill(&mut self) -> io::Result<()> {
        self.out_pos = 0;
        self.out_len = 0;
        while !self.finished && self.out_len == 0 {
            let from_head = self.head_pos < self.head.len();
            let src: &[u8] = if from_head {
                &self.head[self.head_pos..]
            } else {
                loop {
                    match self.inner.fill_buf() {
                        Ok(b) => break b,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                }
            };
            let last = src.is_empty();
            let (result, read, written, _) = self.decoder.decode_to_utf8(src, &mut self.out, last);
            if from_head {
                self.head_pos += read;
            } else {
                self.inner.consume(read);
            }
            clean_controls(&mut self.out[..written]);
            self.out_len = written;
            if last && result == CoderResult::InputEmpty {
                self.finished = true;
            }
        }
        Ok(())
    }
}

impl<R: BufRead> Read for Utf8Input<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Utf8Input<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.out_pos >= self.out_len {
            self.refill()?;
        }
        Ok(&self.out[self.out_pos..self.out_len])
    }

    fn consume(&mut self, amt: usize) {
        self.out_pos = (self.out_pos + amt).min(self.out_len);
    }
}

/// Replaces the C0 controls XML 1.0 forbids (all but tab, LF, CR) by spaces.
/// Safe on UTF-8: bytes below 0x20 never occur inside a multi-byte sequence.
fn clean_controls(bytes: &mut [u8]) {
    for b in bytes {
        if *b < 0x20 && !matches!(*b, b'\t' | b'\n' | b'\r') {
            *b = b' ';
        }
    }
}

/// The encoding named in an XML declaration at the start of `head`, if it is
/// one `encoding_rs` knows and one that can be read as declared (a UTF-16
/// declaration written in single bytes is a lie: the text is then UTF-8).
fn declared_encoding(head: &[u8]) -> Option<&'static Encoding> {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let decl = head.strip_prefix(b"<?xml")?;
    let end = memchr::memmem::find(decl, b"?>")?;
    let decl = &decl[..end];
    let at = memchr::memmem::find(decl, b"encoding")?;
    let rest = decl[at + b"encoding".len()..].trim_ascii_start().strip_prefix(b"=")?.trim_ascii_start();
    let quote = *rest.first().filter(|q| matches!(q, b'"' | b'\''))?;
    let value = &rest[1..];
    let label = &value[..memchr::memchr(quote, value)?];
    let encoding = Encoding::for_label(label)?;
    (encoding.is_ascii_compatible()).then_some(encoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(input: &[u8]) -> String {
        let mut out = String::new();
        // A tiny BufReader capacity exercises sequences split across reads.
        let reader = io::BufReader::with_capacity(3, input);
        Utf8Input::new(reader).unwrap().read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn utf8_passes_and_bom_goes() {
        assert_eq!(decode("\u{feff}<tv>Tëvë 中</tv>".as_bytes()), "<tv>Tëvë 中</tv>");
        assert_eq!(decode(b""), "");
    }

    #[test]
    fn bad_utf8_is_replaced_and_controls_become_spaces() {
        assert_eq!(decode(b"<a>caf\xe9\x01\x0b\t\r\n</a>"), "<a>caf\u{fffd}  \t\r\n</a>");
    }

    #[test]
    fn declared_latin1_is_decoded() {
        let doc = b"<?xml version='1.0' encoding = 'ISO-8859-1'?><tv>caf\xe9</tv>";
        assert_eq!(decode(doc), "<?xml version='1.0' encoding = 'ISO-8859-1'?><tv>café</tv>");
        let doc = b"<?xml version=\"1.0\" encoding=\"windows-1251\"?><tv>\xcf\xe5\xf0\xe2\xfb\xe9</tv>";
        assert!(decode(doc).ends_with("<tv>Первый</tv>"));
    }

    #[test]
    fn utf16_with_bom_is_decoded_and_a_false_utf16_declaration_ignored() {
        let mut doc = vec![0xFF, 0xFE];
        for u in "<tv>é</tv>".encode_utf16() {
            doc.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(decode(&doc), "<tv>é</tv>");
        assert_eq!(
            decode("<?xml version=\"1.0\" encoding=\"UTF-16\"?><tv>é</tv>".as_bytes()),
            "<?xml version=\"1.0\" encoding=\"UTF-16\"?><tv>é</tv>"
        );
    }
}
