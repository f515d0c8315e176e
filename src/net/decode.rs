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

#[cfg(test)]
mod tests {
    use bytes::{Buf, BytesMut};

    use super::*;

    /// How a run of reads ended.
    #[derive(Debug, PartialEq)]
    enum End {
        /// The decoder said EOF; what stayed in the buffer.
        Eof(Vec<u8>),
        /// An empty frame at the end of the stream (`recv` and `recv_all` after EOF), which
        /// every further read would repeat.
        Empty,
        TooLong(usize),
    }

    /// Read frame after frame, as the reader does, with a fresh decoder from `make` for each
    /// read, while `input` arrives in the pieces `cuts` (ascending offsets) makes of it and
    /// then ends.
    fn read_all<D: Decoder>(
        mut make: impl FnMut() -> D,
        input: &[u8],
        cuts: &[usize],
    ) -> (Vec<D::Output>, End) {
        let mut bounds = cuts.to_vec();
        bounds.push(input.len());
        let mut pieces = bounds
            .iter()
            .scan(0, |from, &to| {
                let piece = &input[*from..to];
                *from = to;
                Some(piece)
            })
            .collect::<Vec<_>>()
            .into_iter();
        let mut buf = BytesMut::new();
        let mut eof = false;
        let mut frames = Vec::new();
        let mut decoder = make();
        loop {
            match decoder.decode(&buf, eof) {
                Decoded::Frame { len, consume } => {
                    assert!(len <= consume && consume <= buf.len(), "{len} {consume}");
                    let frame = buf.split_to(len).freeze();
                    buf.advance(consume - len);
                    frames.push(decoder.output(frame));
                    if eof && consume == 0 {
                        return (frames, End::Empty);
                    }
                    decoder = make();
                }
                Decoded::NeedMore => {
                    assert!(!eof, "asked for more after the end");
                    match pieces.next() {
                        Some(piece) => buf.extend_from_slice(piece),
                        None => eof = true,
                    }
                }
                Decoded::Eof => return (frames, End::Eof(buf.to_vec())),
                Decoded::TooLong { limit } => return (frames, End::TooLong(limit)),
            }
        }
    }

    /// Every way of cutting `input` into two or three pieces, and byte by byte.
    fn cuttings(input: &[u8]) -> Vec<Vec<usize>> {
        let n = input.len();
        let mut all = vec![vec![], (1..n).collect()];
        for i in 1..n {
            all.push(vec![i]);
            for j in i + 1..n {
                all.push(vec![i, j]);
            }
        }
        all
    }

    /// Reads give what they give on the whole input at once, however it is cut up; returns
    /// that.
    fn same_however_cut<D: Decoder>(
        mut make: impl FnMut() -> D,
        input: &[u8],
    ) -> (Vec<D::Output>, End)
    where
        D::Output: PartialEq + fmt::Debug,
    {
        let whole = read_all(&mut make, input, &[]);
        for cuts in cuttings(input) {
            assert_eq!(read_all(&mut make, input, &cuts), whole, "cut at {cuts:?}");
        }
        whole
    }

    fn frames(texts: &[&str]) -> Vec<Bytes> {
        texts
            .iter()
            .map(|t| Bytes::copy_from_slice(t.as_bytes()))
            .collect()
    }

    #[test]
    fn decoders_describe_what_they_wait_for_as_messages_say_it() {
        let re = regex::bytes::Regex::new(r"(\d+);").expect("regex");
        assert_eq!(Any { text: true }.to_string(), "at least one byte");
        assert_eq!(Exact { n: 5 }.to_string(), "5 bytes");
        let until = Until::new(b"\r\n", 9).expect("a delimiter");
        assert_eq!(until.to_string(), r#""\r\n""#);
        assert_eq!(Line::new(9).to_string(), r#"a line ending in "\n""#);
        assert_eq!(
            All { limit: 9 }.to_string(),
            "the peer to close the connection"
        );
        assert_eq!(Pattern::new(&re, 9).to_string(), r"a match for /(\\d+);/");
    }

    #[test]
    fn any_takes_what_is_there_and_an_empty_frame_at_the_end() {
        let mut bytes = Any { text: false };
        assert_eq!(bytes.decode(b"", false), Decoded::NeedMore);
        assert_eq!(bytes.decode(b"ab", false), whole(2));
        assert_eq!(bytes.decode(b"", true), whole(0));
        assert_eq!(bytes.decode(b"ab", true), whole(2));
        // Bytes are bytes: an unfinished UTF-8 sequence goes out as it is.
        assert_eq!(bytes.decode(&"€".as_bytes()[..2], false), whole(2));
        assert_eq!(bytes.exact_len(), None);
    }

    #[test]
    fn any_text_holds_back_an_unfinished_utf8_tail_until_it_is_whole_or_the_end() {
        let mut text = Any { text: true };
        let euro = "€".as_bytes();
        assert_eq!(text.decode(&euro[..1], false), Decoded::NeedMore);
        assert_eq!(text.decode(&euro[..2], false), Decoded::NeedMore);
        assert_eq!(text.decode(euro, false), whole(3));
        assert_eq!(text.decode(&[b'a', euro[0], euro[1]], false), whole(1));
        // At the end nothing more can finish it: the tail goes out (as U+FFFD, later).
        assert_eq!(text.decode(&euro[..2], true), whole(2));
        // Invalid bytes are whole already.
        assert_eq!(text.decode(&[b'a', 0xff], false), whole(2));
        assert_eq!(text.decode(&[0x80, 0x80, 0x80, 0x80], false), whole(4));
    }

    #[test]
    fn any_text_never_splits_a_character_however_the_stream_is_cut() {
        let input = "aé€😀b😀".as_bytes();
        for cuts in cuttings(input) {
            let (got, end) = read_all(|| Any { text: true }, input, &cuts);
            assert_eq!(end, End::Empty, "cut at {cuts:?}");
            let joined: Vec<u8> = got.iter().flat_map(|b| b.to_vec()).collect();
            assert_eq!(joined, input, "cut at {cuts:?}");
            for frame in &got[..got.len() - 1] {
                assert!(std::str::from_utf8(frame).is_ok(), "{frame:?} at {cuts:?}");
            }
            // Each piece's end is a frame's end, moved back to where its character starts.
            let text = std::str::from_utf8(input).expect("utf-8");
            let mut ends: Vec<usize> = cuts
                .iter()
                .map(|&c| {
                    (0..=c)
                        .rev()
                        .find(|&i| text.is_char_boundary(i))
                        .unwrap_or(0)
                })
                .filter(|&e| e > 0)
                .collect();
            ends.dedup();
            ends.extend([input.len(), input.len()]);
            let got_ends: Vec<usize> = got
                .iter()
                .scan(0, |at, frame| {
                    *at += frame.len();
                    Some(*at)
                })
                .collect();
            assert_eq!(got_ends, ends, "cut at {cuts:?}");
        }
    }

    #[test]
    fn any_text_gives_an_invalid_tail_at_the_end() {
        let input = [b'o', b'k', 0xe2, 0x82];
        let (got, end) = read_all(|| Any { text: true }, &input, &[1, 3]);
        assert_eq!(
            got,
            vec![
                Bytes::from_static(b"o"),
                Bytes::from_static(b"k"),
                Bytes::from_static(&[0xe2, 0x82]),
                Bytes::new()
            ]
        );
        assert_eq!(end, End::Empty);
    }

    #[test]
    fn exact_waits_for_its_count_and_no_more() {
        let mut exact = Exact { n: 5 };
        assert_eq!(exact.exact_len(), Some(5));
        assert_eq!(exact.decode(b"", false), Decoded::NeedMore);
        assert_eq!(exact.decode(b"abcd", false), Decoded::NeedMore);
        assert_eq!(exact.decode(b"abcde", false), whole(5));
        assert_eq!(exact.decode(b"abcdef", false), whole(5));
        assert_eq!(exact.decode(b"abcd", true), Decoded::Eof);
        assert_eq!(exact.decode(b"abcdef", true), whole(5));
        assert_eq!(Exact { n: 0 }.decode(b"", false), whole(0));
        assert_eq!(Exact { n: 0 }.decode(b"", true), whole(0));
        // No limit of its own: the caller checked `n` against the buffer limit.
        assert_eq!(
            Exact { n: 1 << 20 }.decode(&[0; 1 << 16], false),
            Decoded::NeedMore
        );
    }

    #[test]
    fn exact_reads_are_the_same_however_the_stream_is_cut() {
        let (got, end) = same_however_cut(|| Exact { n: 5 }, b"hello world!");
        assert_eq!(got, frames(&["hello", " worl"]));
        assert_eq!(end, End::Eof(b"d!".to_vec()));
        let (got, end) = same_however_cut(|| Exact { n: 4 }, b"abcdefgh");
        assert_eq!(got, frames(&["abcd", "efgh"]));
        assert_eq!(end, End::Eof(vec![]));
    }

    #[test]
    fn until_refuses_an_empty_delimiter() {
        assert!(Until::new(b"", 10).is_none());
    }

    #[test]
    fn until_takes_what_is_before_the_delimiter_and_drops_the_delimiter() {
        let mut until = Until::new(b"|", 100).expect("a delimiter");
        assert_eq!(until.decode(b"", false), Decoded::NeedMore);
        assert_eq!(
            until.decode(b"ab|cd|", false),
            Decoded::Frame { len: 2, consume: 3 }
        );
        let mut until = Until::new(b"|", 100).expect("a delimiter");
        assert_eq!(
            until.decode(b"|", false),
            Decoded::Frame { len: 0, consume: 1 }
        );
        let mut until = Until::new(b"|", 100).expect("a delimiter");
        assert_eq!(until.decode(b"abc", true), Decoded::Eof);
    }

    #[test]
    fn until_resumes_its_search_and_finds_a_delimiter_split_across_reads() {
        let mut until = Until::new(b"END", 100).expect("a delimiter");
        assert_eq!(until.decode(b"abcE", false), Decoded::NeedMore);
        assert_eq!(until.searched, 4);
        assert_eq!(until.decode(b"abcEN", false), Decoded::NeedMore);
        assert_eq!(until.searched, 5);
        assert_eq!(
            until.decode(b"abcENDx", false),
            Decoded::Frame { len: 3, consume: 6 }
        );
    }

    #[test]
    fn until_reads_are_the_same_however_the_stream_is_cut() {
        let until = |delim: &'static [u8]| move || Until::new(delim, 100).expect("a delimiter");
        let (got, end) = same_however_cut(until(b"|"), b"a|bc||d");
        assert_eq!(got, frames(&["a", "bc", ""]));
        assert_eq!(end, End::Eof(b"d".to_vec()));
        let (got, end) = same_however_cut(until(b"END"), b"xENENDyEEND");
        assert_eq!(got, frames(&["xEN", "yE"]));
        assert_eq!(end, End::Eof(vec![]));
        // A delimiter that overlaps itself.
        let (got, end) = same_however_cut(until(b"\r\n\r\n"), b"a\r\n\r\r\n\r\nb\r\n\r\n");
        assert_eq!(got, frames(&["a\r\n\r", "b"]));
        assert_eq!(end, End::Eof(vec![]));
        let (got, _) = same_however_cut(until(b"aab"), b"aaabaab");
        assert_eq!(got, frames(&["a", ""]));
        let (got, _) = same_however_cut(until("€".as_bytes()), "1€€2€".as_bytes());
        assert_eq!(got, frames(&["1", "", "2"]));
    }

    #[test]
    fn until_is_too_long_at_its_limit_without_a_delimiter() {
        let mut until = Until::new(b"|", 4).expect("a delimiter");
        assert_eq!(until.decode(b"abc", false), Decoded::NeedMore);
        assert_eq!(until.decode(b"abcd", false), Decoded::TooLong { limit: 4 });
        // A delimiter already in the buffer is found, however far in: reads may overshoot.
        let mut until = Until::new(b"|", 4).expect("a delimiter");
        assert_eq!(
            until.decode(b"abcdef|", false),
            Decoded::Frame { len: 6, consume: 7 }
        );
        // At the end, EOF is the reason, not the limit.
        let mut until = Until::new(b"|", 4).expect("a delimiter");
        assert_eq!(until.decode(b"abcdef", true), Decoded::Eof);
    }

    #[test]
    fn line_drops_its_line_ending() {
        let mut line = Line::new(100);
        assert_eq!(line.decode(b"", false), Decoded::NeedMore);
        assert_eq!(
            line.decode(b"ab\ncd", false),
            Decoded::Frame { len: 2, consume: 3 }
        );
        let mut line = Line::new(100);
        assert_eq!(
            line.decode(b"ab\r\ncd", false),
            Decoded::Frame { len: 2, consume: 4 }
        );
        let mut line = Line::new(100);
        assert_eq!(
            line.decode(b"\n", false),
            Decoded::Frame { len: 0, consume: 1 }
        );
        let mut line = Line::new(100);
        assert_eq!(
            line.decode(b"\r\n", false),
            Decoded::Frame { len: 0, consume: 2 }
        );
        // Only the `\r` right before the `\n` goes.
        let mut line = Line::new(100);
        assert_eq!(
            line.decode(b"a\rb\r\r\n", false),
            Decoded::Frame { len: 4, consume: 6 }
        );
        let mut line = Line::new(100);
        assert_eq!(line.decode(b"ab\r", true), Decoded::Eof);
    }

    #[test]
    fn line_finds_a_crlf_split_across_reads() {
        let mut line = Line::new(100);
        assert_eq!(line.decode(b"ab\r", false), Decoded::NeedMore);
        assert_eq!(line.searched, 3);
        assert_eq!(
            line.decode(b"ab\r\n", false),
            Decoded::Frame { len: 2, consume: 4 }
        );
    }

    #[test]
    fn line_reads_are_the_same_however_the_stream_is_cut() {
        let (got, end) = same_however_cut(|| Line::new(100), b"one\r\ntwo\n\n\r\nthr\ree\r");
        assert_eq!(got, frames(&["one", "two", "", "",]));
        assert_eq!(end, End::Eof(b"thr\ree\r".to_vec()));
    }

    #[test]
    fn line_is_too_long_at_its_limit_without_a_line_ending() {
        let mut line = Line::new(4);
        assert_eq!(line.decode(b"abc", false), Decoded::NeedMore);
        assert_eq!(line.decode(b"abcd", false), Decoded::TooLong { limit: 4 });
        // The limit counts buffered bytes, line ending and all.
        let mut line = Line::new(4);
        assert_eq!(line.decode(b"abc\r", false), Decoded::TooLong { limit: 4 });
        let mut line = Line::new(4);
        assert_eq!(
            line.decode(b"abc\n", false),
            Decoded::Frame { len: 3, consume: 4 }
        );
        let mut line = Line::new(4);
        assert_eq!(
            line.decode(b"abcde\n", false),
            Decoded::Frame { len: 5, consume: 6 }
        );
    }

    #[test]
    fn all_waits_for_the_end_within_its_limit() {
        let mut all = All { limit: 4 };
        assert_eq!(all.decode(b"", false), Decoded::NeedMore);
        assert_eq!(all.decode(b"abc", false), Decoded::NeedMore);
        assert_eq!(all.decode(b"abcd", false), Decoded::TooLong { limit: 4 });
        assert_eq!(all.decode(b"", true), whole(0));
        assert_eq!(all.decode(b"abc", true), whole(3));
        // What arrived before the end was seen is kept, over the limit or not.
        assert_eq!(all.decode(b"abcdef", true), whole(6));
        let (got, end) = same_however_cut(|| All { limit: 100 }, b"all of it\n");
        assert_eq!(got, frames(&["all of it\n", ""]));
        assert_eq!(end, End::Empty);
    }

    fn expected(before: &str, text: &str, groups: &[Option<&str>]) -> Match {
        let bytes = |t: &str| Bytes::copy_from_slice(t.as_bytes());
        Match {
            before: bytes(before),
            text: bytes(text),
            groups: groups.iter().map(|g| g.map(bytes)).collect(),
        }
    }

    #[test]
    fn pattern_waits_for_a_match_and_takes_everything_through_it() {
        let re = regex::bytes::Regex::new(r"(\d+);").expect("regex");
        let mut pattern = Pattern::new(&re, 100);
        assert_eq!(pattern.decode(b"", false), Decoded::NeedMore);
        assert_eq!(pattern.decode(b"xx12", false), Decoded::NeedMore);
        assert_eq!(pattern.decode(b"xx12;rest", false), whole(5));
        let got = pattern.output(Bytes::from_static(b"xx12;"));
        assert_eq!(got, expected("xx", "12;", &[Some("12")]));
        let mut pattern = Pattern::new(&re, 100);
        assert_eq!(pattern.decode(b"xx12", true), Decoded::Eof);
    }

    #[test]
    fn pattern_gives_a_group_that_took_no_part_as_none() {
        let re = regex::bytes::Regex::new(r"(a)|(b)").expect("regex");
        let mut pattern = Pattern::new(&re, 100);
        assert_eq!(pattern.decode(b"-b", false), whole(2));
        let got = pattern.output(Bytes::from_static(b"-b"));
        assert_eq!(got, expected("-", "b", &[None, Some("b")]));
    }

    #[test]
    fn pattern_matches_as_soon_as_it_can() {
        // What arrived so far is all a match can use: `\d+` does not wait for more digits.
        let re = regex::bytes::Regex::new(r"\d+").expect("regex");
        let mut pattern = Pattern::new(&re, 100);
        assert_eq!(pattern.decode(b"a1", false), whole(2));
        assert_eq!(
            pattern.output(Bytes::from_static(b"a1")),
            expected("a", "1", &[])
        );
        // An empty match takes nothing.
        let re = regex::bytes::Regex::new(r"x*").expect("regex");
        let mut pattern = Pattern::new(&re, 100);
        assert_eq!(pattern.decode(b"abc", false), whole(0));
        assert_eq!(pattern.output(Bytes::new()), expected("", "", &[]));
    }

    #[test]
    fn pattern_reads_are_the_same_however_the_stream_is_cut() {
        let re = regex::bytes::Regex::new(r"(\d+);").expect("regex");
        let (got, end) = same_however_cut(|| Pattern::new(&re, 100), b"ab12;;7;x9");
        assert_eq!(
            got,
            vec![
                expected("ab", "12;", &[Some("12")]),
                expected(";", "7;", &[Some("7")])
            ]
        );
        assert_eq!(end, End::Eof(b"x9".to_vec()));
    }

    #[test]
    fn pattern_is_too_long_at_its_limit_without_a_match() {
        let re = regex::bytes::Regex::new(r"(\d+);").expect("regex");
        let mut pattern = Pattern::new(&re, 4);
        assert_eq!(pattern.decode(b"abc", false), Decoded::NeedMore);
        assert_eq!(
            pattern.decode(b"abcd", false),
            Decoded::TooLong { limit: 4 }
        );
        // A match already in the buffer is found, however far in.
        let mut pattern = Pattern::new(&re, 4);
        assert_eq!(pattern.decode(b"abcde1;", false), whole(7));
        let mut pattern = Pattern::new(&re, 4);
        assert_eq!(pattern.decode(b"abcde1", true), Decoded::Eof);
    }

    #[test]
    fn holds_back_only_an_unfinished_utf8_tail() {
        assert_eq!(whole_utf8_prefix(b""), 0);
        assert_eq!(whole_utf8_prefix(b"abc"), 3);
        let e_acute = "é".as_bytes();
        assert_eq!(whole_utf8_prefix(&[b'a', e_acute[0]]), 1);
        assert_eq!(whole_utf8_prefix(&[b'a', e_acute[0], e_acute[1]]), 3);
        let euro = "€".as_bytes();
        assert_eq!(whole_utf8_prefix(&euro[..2]), 0);
        let grin = "😀".as_bytes();
        assert_eq!(whole_utf8_prefix(&grin[..3]), 0);
        assert_eq!(whole_utf8_prefix(grin), 4);
        assert_eq!(whole_utf8_prefix(&[0xff, 0xfe]), 2);
        // A lead byte that promises less than follows it is whole.
        assert_eq!(whole_utf8_prefix(&[0xc3, 0xa9, 0x80]), 3);
    }
}
