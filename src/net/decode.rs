//! Framing: which bytes of a stream's buffer answer a read. Each decoder is a pure function of
//! the bytes buffered so far and whether the stream has ended; it never touches a socket, a
//! deadline or the buffer itself. The reader in [`super::conn`] owns all three: it offers its
//! buffer to a decoder, reads more while the decoder asks for more, and takes the frame off the
//! buffer. Every way a script cuts a stream (`recv`, `recv_exact`, `recv_until`, `recv_line`,
//! `recv_all`, `expect`) is therefore written once, here, and tested here without sockets.
//!
//! A decoder is made for one read. Between two calls of [`Decoder::decode`] its buffer may only
//! grow (the reader takes nothing off it until a frame is whole), which is what lets [`Until`]
//! and [`Line`] resume their search where the last one stopped instead of starting over.

use std::fmt;

use bytes::Bytes;

/// What a decoder made of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// No frame yet: read more and ask again.
    NeedMore,
    /// A frame: the answer is the first `len` bytes, and `consume` bytes (the answer and what
    /// delimits it) leave the buffer.
    Frame { len: usize, consume: usize },
    /// The stream ended before a frame was whole. The buffer keeps its bytes, for the
    /// diagnostic and for a later read.
    Eof,
    /// `limit` bytes or more are buffered and no frame is among them.
    TooLong { limit: usize },
}

/// A way to cut a frame out of a stream. Its `Display` says what it waits for, in the words
/// of an error message: ``recv_line from `addr` timed out … waiting for a line ending in "\n"``.
pub trait Decoder: fmt::Display {
    /// The read's answer.
    type Output;

    /// Look at everything buffered: a frame, or why there is none.
    fn decode(&mut self, buf: &[u8], eof: bool) -> Decoded;

    /// The frame's size, when it is known before a byte arrives (exact reads): the reader can
    /// then give a large frame a buffer of its own and hand that buffer over whole.
    fn exact_len(&self) -> Option<usize> {
        None
    }

    /// Make the answer out of the frame the reader took off its buffer (its first `len` bytes
    /// of the last [`Decoded::Frame`]).
    fn output(&mut self, frame: Bytes) -> Self::Output;
}

/// No frame in `buf`: what every decoder says then.
fn pending(buf: &[u8], eof: bool, limit: usize) -> Decoded {
    if eof {
        Decoded::Eof
    } else if buf.len() >= limit {
        Decoded::TooLong { limit }
    } else {
        Decoded::NeedMore
    }
}

/// The whole of a buffer's first `n` bytes as a frame.
fn whole(n: usize) -> Decoded {
    Decoded::Frame { len: n, consume: n }
}

/// `recv`: whatever has arrived, at least one byte; an empty frame once the stream has ended.
/// With `text`, a UTF-8 sequence split across reads is held back until it is whole, so a
/// script never sees half a character turned into U+FFFD.
pub struct Any {
    pub text: bool,
}

impl Decoder for Any {
    type Output = Bytes;

    fn decode(&mut self, buf: &[u8], eof: bool) -> Decoded {
        let n = if self.text && !eof {
            whole_utf8_prefix(buf)
        } else {
            buf.len()
        };
        if n > 0 || eof {
            whole(n)
        } else {
            Decoded::NeedMore
        }
    }

    fn output(&mut self, frame: Bytes) -> Bytes {
        frame
    }
}

impl fmt::Display for Any {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("at least one byte")
    }
}

/// `recv_exact`: exactly `n` bytes. Its caller checks `n` against the buffer limit before the
/// read starts, so it has no limit of its own.
pub struct Exact {
    pub n: usize,
}

impl Decoder for Exact {
    type Output = Bytes;

    fn decode(&mut self, buf: &[u8], eof: bool) -> Decoded {
        if buf.len() >= self.n {
            whole(self.n)
        } else {
            pending(buf, eof, usize::MAX)
        }
    }

    fn exact_len(&self) -> Option<usize> {
        Some(self.n)
    }

    fn output(&mut self, frame: Bytes) -> Bytes {
        frame
    }
}

impl fmt::Display for Exact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes", self.n)
    }
}

/// `recv_until`: everything before a delimiter, which is consumed and not returned.
pub struct Until<'d> {
    delim: &'d [u8],
    limit: usize,
    /// How much of the buffer earlier calls searched.
    searched: usize,
}

impl<'d> Until<'d> {
    /// `None` for an empty delimiter, which would match before every byte.
    pub fn new(delim: &'d [u8], limit: usize) -> Option<Until<'d>> {
        (!delim.is_empty()).then_some(Until {
            delim,
            limit,
            searched: 0,
        })
    }
}

impl Decoder for Until<'_> {
    type Output = Bytes;

    fn decode(&mut self, buf: &[u8], eof: bool) -> Decoded {
        // Searched bytes hold no whole delimiter, but their last `len - 1` may hold its start.
        let from = self
            .searched
            .saturating_sub(self.delim.len() - 1)
            .min(buf.len());
        // `memmem::find` rather than a `Finder` built once: for the short buffers of most
        // reads it searches without building anything.
        if let Some(i) = memchr::memmem::find(&buf[from..], self.delim) {
            let at = from + i;
            return Decoded::Frame {
                len: at,
                consume: at + self.delim.len(),
            };
        }
        self.searched = buf.len();
        pending(buf, eof, self.limit)
    }

    fn output(&mut self, frame: Bytes) -> Bytes {
        frame
    }
}

impl fmt::Display for Until<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.delim))
    }
}

/// `recv_line`: one line, without its `\n`, and without the `\r` before it when there is one.
pub struct Line {
    limit: usize,
    /// How much of the buffer earlier calls searched.
    searched: usize,
}

impl Line {
    pub fn new(limit: usize) -> Line {
        Line { limit, searched: 0 }
    }
}

impl Decoder for Line {
    type Output = Bytes;

    fn decode(&mut self, buf: &[u8], eof: bool) -> Decoded {
        let from = self.searched.min(buf.len());
        if let Some(i) = memchr::memchr(b'\n', &buf[from..]) {
            let at = from + i;
            // The `\r` of a `\r\n` split across reads is found here too: it is in the buffer
            // by the time its `\n` is.
            let len = if at > 0 && buf[at - 1] == b'\r' {
                at - 1
            } else {
                at
            };
            return Decoded::Frame {
                len,
                consume: at + 1,
            };
        }
        self.searched = buf.len();
        pending(buf, eof, self.limit)
    }

    fn output(&mut self, frame: Bytes) -> Bytes {
        frame
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a line ending in \"\\n\"")
    }
}

/// `recv_all`: everything until the stream ends.
pub struct All {
    pub limit: usize,
}

impl Decoder for All {
    type Output = Bytes;

    fn decode(&mut self, buf: &[u8], eof: bool) -> Decoded {
        if eof {
            whole(buf.len())
        } else {
            pending(buf, eof, self.limit)
        }
    }

    fn output(&mut self, frame: Bytes) -> Bytes {
        frame
    }
}

impl fmt::Display for All {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the peer to close the connection")
    }
}

/// What `expect` found: the bytes before the match, the match, and its capture groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub before: Bytes,
    pub text: Bytes,
    pub groups: Vec<Option<Bytes>>,
}

/// `expect`: the first match of a regex anywhere in the buffer; everything through the match
/// is consumed. A regex can match anywhere in what arrived, so each call searches the whole
/// buffer again; `limit` bounds that.
pub struct Pattern<'r> {
    re: &'r regex::bytes::Regex,
    limit: usize,
    /// Where the last search put the match and its groups; kept across calls so a search
    /// allocates nothing.
    found: regex::bytes::CaptureLocations,
}

impl<'r> Pattern<'r> {
    pub fn new(re: &'r regex::bytes::Regex, limit: usize) -> Pattern<'r> {
        Pattern {
            re,
            limit,
            found: re.capture_locations(),
        }
    }
}

impl Decoder for Pattern<'_> {
    type Output = Match;

    fn decode(&mut self, buf: &[u8], eof: bool) -> Decoded {
        match self.re.captures_read(&mut self.found, buf) {
            Some(m) => whole(m.end()),
            None => pending(buf, eof, self.limit),
        }
    }

    fn output(&mut self, frame: Bytes) -> Match {
        // The frame ends where the match does, so every span found lies inside it.
        let slice = |(start, end): (usize, usize)| frame.slice(start..end);
        let (start, end) = self.found.get(0).unwrap_or((0, frame.len()));
        Match {
            before: frame.slice(..start),
            text: slice((start, end)),
            groups: (1..self.found.len())
                .map(|i| self.found.get(i).map(slice))
                .collect(),
        }
    }
}

impl fmt::Display for Pattern<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a match for /{}/", self.re.as_str().escape_debug())
    }
}

/// The length of the longest prefix of `buf` that does not end inside a UTF-8 sequence.
/// Invalid bytes count as whole (they decode to U+FFFD); only a valid but unfinished
/// sequence at the very end is held back.
fn whole_utf8_prefix(buf: &[u8]) -> usize {
    let len = buf.len();
    for back in 1..=len.min(3) {
        let b = buf[len - back];
        if b & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back for the lead
        }
        let need = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return len,
        };
        return if need > back { len - back } else { len };
    }
    len
}
