//! Secrets (`--secret`, `SOCKSCRIPT_SECRET_*`) replaced by `***` in everything sockscript writes.
//! The [`Redactor`] is applied at the live sinks (the script's `print`, the live `--trace`) and
//! once to each finished [`Outcome`] before any view reads it, so the reports stay pure
//! renderers that never see a secret. Which values are secret is decided in `options.rs`.
//!
//! A secret is matched in the text or bytes of one piece at a time (a printed line, an event's
//! payload, a diagnostic field). In a finished transcript, a secret split across two
//! consecutive payloads of one stream (a read that returned half of it) is masked too. The live
//! `--trace` prints the first part before the rest arrives, so its [`LiveRedactor`] masks the
//! end of a payload that could begin a secret, then the start of the next one that finishes it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use memchr::memmem::Finder;

use crate::diagnostic::Diag;
use crate::outcome::Outcome;
use crate::transcript::{Event, EventKind};

/// What a secret is replaced by.
pub const MASK: &str = "***";

/// The secrets of a run, ready to be searched for; cheap to clone. With no secrets every method
/// returns its input unchanged without looking at it.
#[derive(Clone, Default)]
pub struct Redactor {
    /// The forms to search for, longest first, so a secret that contains another is masked
    /// whole; `None` when there are none.
    needles: Option<Arc<[Finder<'static>]>>,
}

impl std::fmt::Debug for Redactor {
    // Never the values: a `{:?}` of the options must not print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.needles.as_ref().map_or(0, |n| n.len());
        write!(f, "Redactor({n} forms)")
    }
}

impl Redactor {
    /// A redactor for these secret values. An empty value is ignored (it would match
    /// everywhere). Each value is also searched for as a quoted string shows it (`a"b` as
    /// `a\"b`, in Rust's `{:?}` escaping): assertion values and quoted delimiters use it.
    pub fn new<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) -> Redactor {
        let mut forms: Vec<String> = Vec::new();
        for secret in secrets {
            let secret = secret.as_ref();
            if secret.is_empty() {
                continue;
            }
            forms.push(secret.to_owned());
            let quoted = format!("{secret:?}");
            let escaped = &quoted[1..quoted.len() - 1];
            if escaped != secret {
                forms.push(escaped.to_owned());
            }
        }
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        if forms.is_empty() {
            return Redactor::default();
        }
        let needles = forms
            .iter()
            .map(|f| Finder::new(f.as_bytes()).into_owned())
            .collect();
        Redactor {
            needles: Some(needles),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_none()
    }

    /// Every secret in `data` replaced by [`MASK`]; borrowed when there is none.
    pub fn bytes<'a>(&self, data: &'a [u8]) -> Cow<'a, [u8]> {
        match self.matches(data) {
            None => Cow::Borrowed(data),
            Some(found) => Cow::Owned(splice(data, &found)),
        }
    }

    /// Every secret in `text` replaced by [`MASK`]; borrowed when there is none.
    pub fn str<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.bytes(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            // A secret is valid UTF-8 and UTF-8 is self-synchronising, so a match never starts
            // or ends inside a character: cutting it out leaves valid UTF-8.
            Cow::Owned(bytes) => Cow::Owned(
                String::from_utf8(bytes)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            ),
        }
    }

    fn string(&self, text: &mut String) {
        if let Cow::Owned(clean) = self.str(text) {
            *text = clean;
        }
    }

    /// The spans of the secrets in `data`, leftmost first, longest at a tie, never
    /// overlapping; `None` when there is none.
    fn matches(&self, data: &[u8]) -> Option<Vec<(usize, usize)>> {
        let needles = self.needles.as_deref()?;
        // The next occurrence of each needle at or after `from`, searched for again only once
        // `from` has passed it, so the whole search is linear in the matches found.
        let mut next: Vec<Option<usize>> = needles.iter().map(|n| n.find(data)).collect();
        let mut found = Vec::new();
        let mut from = 0;
        loop {
            let mut best: Option<(usize, usize)> = None;
            for (needle, at) in needles.iter().zip(next.iter_mut()) {
                if at.is_some_and(|i| i < from) {
                    *at = needle.find(&data[from..]).map(|i| from + i);
                }
                let Some(start) = *at else { continue };
                // Needles are longest first, so at a tie the first seen is the longest.
                if best.is_none_or(|(s, _)| start < s) {
                    best = Some((start, start + needle.needle().len()));
                }
            }
            let Some((start, end)) = best else { break };
            found.push((start, end));
            from = end;
        }
        (!found.is_empty()).then_some(found)
    }

    /// An event with the secrets in its payload preview, note and addresses masked; borrowed
    /// when there is none. `len` is adjusted by what masking changed, so the bytes past the
    /// preview are still counted right.
    pub fn event<'a>(&self, event: &'a Event) -> Cow<'a, Event> {
        if self.is_empty() {
            return Cow::Borrowed(event);
        }
        let mut clean = event.clone();
        if self.event_in_place(&mut clean) {
            Cow::Owned(clean)
        } else {
            Cow::Borrowed(event)
        }
    }

    /// Mask an event in place; whether anything changed.
    fn event_in_place(&self, event: &mut Event) -> bool {
        let mut changed = false;
        if let Cow::Owned(data) = self.bytes(&event.data) {
            event.len = event.len - event.data.len() + data.len();
            event.data = Bytes::from(data);
            changed = true;
        }
        if let Some(note) = &mut event.note {
            if let Cow::Owned(clean) = self.str(note) {
                *note = clean;
                changed = true;
            }
        }
        for addr in [&mut event.local, &mut event.peer].into_iter().flatten() {
            if let Cow::Owned(clean) = self.str(addr) {
                *addr = clean.into();
                changed = true;
            }
        }
        changed
    }

    /// Mask a finished outcome before any view reads it: its diagnostic and its transcript.
    /// Its `stdout` was masked line by line as the script printed it.
    pub fn outcome(&self, outcome: &mut Outcome) {
        if self.is_empty() {
            return;
        }
        if let Some(diag) = &mut outcome.diagnostic {
            self.diag(diag);
        }
        if let Cow::Owned(source) = self.str(&outcome.source) {
            outcome.source = source.into();
        }
        for event in &mut outcome.transcript {
            self.event_in_place(event);
        }
        self.across_events(&mut outcome.transcript);
    }

    /// Mask a secret split across two consecutive payloads of one stream (same direction and
    /// addresses), in both. Only a payload kept whole joins the next one: after a preview cut
    /// short, the next payload does not continue what is shown. A secret spread over three
    /// payloads or more is not found.
    fn across_events(&self, events: &mut [Event]) {
        let Some(longest) = self.needles.as_deref().and_then(|n| n.first()) else {
            return;
        };
        let reach = longest.needle().len() - 1;
        if reach == 0 {
            return;
        }
        let mut last: HashMap<Stream, usize> = HashMap::new();
        for i in 0..events.len() {
            let event = &events[i];
            if !matches!(event.kind, EventKind::Send | EventKind::Recv) {
                continue;
            }
            let stream = (event.kind.as_str(), event.local.clone(), event.peer.clone());
            let Some(p) = last.insert(stream, i) else {
                continue;
            };
            let (a, b) = (&events[p].data, &events[i].data);
            if events[p].len != a.len() {
                continue;
            }
            let tail = a.len().min(reach);
            let mut window = a[a.len() - tail..].to_vec();
            window.extend_from_slice(&b[..b.len().min(reach)]);
            let Some(found) = self.matches(&window) else {
                continue;
            };
            let Some(&(start, end)) = found.iter().find(|(s, e)| *s < tail && *e > tail) else {
                continue;
            };
            let cut_a = a.len() - tail + start;
            let mut new_a = a[..cut_a].to_vec();
            new_a.extend_from_slice(MASK.as_bytes());
            let mut new_b = MASK.as_bytes().to_vec();
            new_b.extend_from_slice(&b[end - tail..]);
            for (j, data) in [(p, new_a), (i, new_b)] {
                let e = &mut events[j];
                e.len = e.len - e.data.len() + data.len();
                e.data = Bytes::from(data);
            }
        }
    }

    /// Mask a diagnostic's words and the script it quotes, moving its labels with the text.
    fn diag(&self, diag: &mut Diag) {
        // A kind the script threw itself (`throw #{kind: token}`) is its own text too: reports
        // carry it as the failure's type.
        if let crate::diagnostic::Code::Custom(kind) = &mut diag.code {
            self.string(kind);
        }
        self.string(&mut diag.message);
        if let Some(help) = &mut diag.help {
            self.string(help);
        }
        self.quoted(&mut diag.source, &mut diag.labels);
        for snippet in &mut diag.more {
            self.string(&mut snippet.file);
            self.quoted(&mut snippet.source, &mut snippet.labels);
        }
    }

    /// Mask a file a diagnostic quotes and its labels' words, moving the labels with the text.
    fn quoted(&self, source: &mut String, labels: &mut [(usize, usize, String)]) {
        for (_, _, text) in labels.iter_mut() {
            self.string(text);
        }
        let Some(found) = self.matches(source.as_bytes()) else {
            return;
        };
        let moved = |offset: usize, is_end: bool| -> usize {
            let mut shift = 0isize;
            for &(start, end) in &found {
                if offset >= end {
                    shift += MASK.len() as isize - (end - start) as isize;
                } else if offset > start {
                    // Inside a secret: to the mask's start, or for an end its end.
                    let to = if is_end { start + MASK.len() } else { start };
                    return to.saturating_add_signed(shift);
                } else {
                    break;
                }
            }
            offset.saturating_add_signed(shift)
        };
        for (offset, len, _) in labels.iter_mut() {
            let start = moved(*offset, false);
            let end = moved(*offset + *len, true);
            (*offset, *len) = (start, end.saturating_sub(start));
        }
        let clean = splice(source.as_bytes(), &found);
        *source = String::from_utf8(clean)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    }
}

/// The live `--trace`'s redactor: it sees one event at a time and prints it at once, so a
/// secret split across two payloads of a stream (a read that returned part of it) is masked by
/// what each end of a payload could be. A payload that ends with the start of a secret (two
/// bytes or more of it) shows that end as [`MASK`]; the stream remembers it, and its next
/// payload's start, if it goes on with the same secret, is masked too (a payload that is all
/// continuation keeps it open for the one after). The price is an innocent end that happens to
/// spell a secret's first bytes, also shown as `***`. At most the first byte of a secret shows
/// at a split.
pub struct LiveRedactor {
    redactor: Redactor,
    /// Per stream (kind and addresses, as [`Redactor::across_events`] keys them), the bytes of
    /// a secret its last payload ended with.
    open: std::sync::Mutex<HashMap<Stream, Vec<u8>>>,
}

type Stream = (&'static str, Option<Arc<str>>, Option<Arc<str>>);

/// A payload end that spells this many first bytes of a secret, or more, is shown masked.
const MASKED_START: usize = 2;

impl LiveRedactor {
    pub fn new(redactor: Redactor) -> LiveRedactor {
        LiveRedactor {
            redactor,
            open: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// `event` as the live trace may print it.
    pub fn event<'a>(&self, event: &'a Event) -> Cow<'a, Event> {
        let Some(needles) = self.redactor.needles.as_deref() else {
            return Cow::Borrowed(event);
        };
        if !matches!(event.kind, EventKind::Send | EventKind::Recv) || event.data.is_empty() {
            return self.redactor.event(event);
        }
        let data = &event.data[..];
        // A payload cut to its preview does not end where the stream's next payload starts.
        let whole = event.len == data.len();
        let stream = (event.kind.as_str(), event.local.clone(), event.peer.clone());
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let before = open.remove(&stream);
        // How much of the start goes on with a secret begun before, and whether all of it
        // does without finishing it.
        let (head, still_open) = before
            .map(|begun| continuation(needles, &begun, data))
            .unwrap_or((0, None));
        let mut tail = 0;
        match still_open {
            Some(begun) if whole => {
                open.insert(stream, begun);
            }
            Some(_) => {}
            None if whole => {
                if let Some(begun) = secret_start_at_end(needles, &data[head..]) {
                    if begun.len() >= MASKED_START {
                        tail = begun.len();
                    }
                    open.insert(stream, begun.to_vec());
                }
            }
            None => {}
        }
        drop(open);
        if head == 0 && tail == 0 {
            return self.redactor.event(event);
        }
        // The masks are the union of the whole secrets in the payload, the start that finishes
        // one begun before and the end that begins one: an end can be inside a whole secret
        // (`hunter2` ends with `r2`, the start of `r2d2`), and masking it alone would leave
        // the rest of that secret showing.
        let mut spans = self.redactor.matches(data).unwrap_or_default();
        if head > 0 {
            spans.push((0, head));
        }
        if tail > 0 {
            spans.push((data.len() - tail, data.len()));
        }
        spans.sort_unstable();
        let mut union: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            match union.last_mut() {
                Some(last) if start < last.1 => last.1 = last.1.max(end),
                _ => union.push((start, end)),
            }
        }
        let shown = splice(data, &union);
        let mut clean = event.clone();
        clean.len = event.len - data.len() + shown.len();
        clean.data = Bytes::from(shown);
        // Its note and addresses; the payload has no secret left to find.
        self.redactor.event_in_place(&mut clean);
        Cow::Owned(clean)
    }
}

/// How many first bytes of `data` finish (or go on with) a secret whose first bytes `begun`
/// were; with the secret still unfinished at the end of `data`, what of it has been seen.
fn continuation(
    needles: &[Finder<'static>],
    begun: &[u8],
    data: &[u8],
) -> (usize, Option<Vec<u8>>) {
    for needle in needles {
        let Some(rest) = needle.needle().strip_prefix(begun) else {
            continue;
        };
        if rest.is_empty() {
            continue;
        }
        if data.starts_with(rest) {
            return (rest.len(), None);
        }
        if rest.starts_with(data) {
            return (data.len(), Some([begun, data].concat()));
        }
    }
    (0, None)
}

/// The longest end of `data` that is the start (not the whole) of a secret.
fn secret_start_at_end<'d>(needles: &[Finder<'static>], data: &'d [u8]) -> Option<&'d [u8]> {
    let mut longest: Option<&[u8]> = None;
    for needle in needles {
        let secret = needle.needle();
        let most = (secret.len() - 1).min(data.len());
        let known = longest.map_or(0, <[u8]>::len);
        if let Some(k) = (known + 1..=most)
            .rev()
            .find(|&k| data[data.len() - k..] == secret[..k])
        {
            longest = Some(&data[data.len() - k..]);
        }
    }
    longest
}

/// `data` with each span replaced by [`MASK`].
fn splice(data: &[u8], found: &[(usize, usize)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut from = 0;
    for &(start, end) in found {
        out.extend_from_slice(&data[from..start]);
        out.extend_from_slice(MASK.as_bytes());
        from = end;
    }
    out.extend_from_slice(&data[from..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::Code;
    use crate::outcome::Status;
    use std::time::Duration;

    #[test]
    fn masks_every_occurrence_longest_first() {
        let r = Redactor::new(["abc", "abcdef", "xyz"]);
        assert_eq!(r.str("abcdef abc xyzxyz ab"), "*** *** ****** ab");
        assert_eq!(&*r.bytes(b"\x00abcdef\xff"), b"\x00***\xff");
        assert!(matches!(r.str("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn overlapping_secrets_mask_the_leftmost() {
        let r = Redactor::new(["aab", "abc"]);
        assert_eq!(r.str("aabc"), "***c");
        assert_eq!(Redactor::new(["aa"]).str("aaaaa"), "******a");
    }

    #[test]
    fn empty_secrets_mask_nothing_and_none_costs_nothing() {
        let r = Redactor::new(["", ""]);
        assert!(r.is_empty());
        assert!(matches!(r.str("text"), Cow::Borrowed("text")));
        assert!(matches!(r.bytes(b"data"), Cow::Borrowed(_)));
    }

    #[test]
    fn escaped_forms_are_masked_too() {
        assert_eq!(Redactor::new(["it's"]).str("\"it's\""), "\"***\"");
        let r = Redactor::new(["a\"b\nc"]);
        assert_eq!(r.str(r#"left: "a\"b\nc""#), r#"left: "***""#);
        assert_eq!(r.str("x a\"b\nc y"), "x *** y");
        assert_eq!(format!("{r:?}"), "Redactor(2 forms)");
    }

    #[test]
    fn non_ascii_text_stays_text() {
        let r = Redactor::new(["é"]);
        assert_eq!(r.str("café é"), "caf*** ***");
    }

    #[test]
    fn events_keep_counting_the_bytes_past_the_preview() {
        let r = Redactor::new(["s3cr3t-xyz"]);
        let event = Event {
            position: None,
            at: Duration::ZERO,
            task: "main".into(),
            kind: EventKind::Send,
            on: Default::default(),
            local: Some("127.0.0.1:1".into()),
            peer: Some("s3cr3t-xyz:2".into()),
            data: Bytes::from_static(b"token s3cr3t-xyz"),
            len: 20,
            note: Some("sent s3cr3t-xyz".into()),
        };
        let clean = r.event(&event);
        assert_eq!(&clean.data[..], b"token ***");
        assert_eq!(clean.len, 13);
        assert_eq!(clean.peer.as_deref(), Some("***:2"));
        assert_eq!(clean.note.as_deref(), Some("sent ***"));
        let plain = Redactor::new(["zzz"]);
        assert!(matches!(plain.event(&event), Cow::Borrowed(_)));
    }

    fn event(kind: EventKind, peer: &str, data: &'static [u8], len: usize) -> Event {
        Event {
            at: Duration::ZERO,
            task: "main".into(),
            position: None,
            kind,
            on: Default::default(),
            local: Some("127.0.0.1:1".into()),
            peer: Some(peer.into()),
            data: Bytes::from_static(data),
            len,
            note: None,
        }
    }

    /// What the live trace prints for each of `events`, in order, as text.
    fn live(secrets: &[&str], events: &[Event]) -> Vec<(String, usize)> {
        let r = LiveRedactor::new(Redactor::new(secrets));
        events
            .iter()
            .map(|e| {
                let shown = r.event(e);
                (String::from_utf8_lossy(&shown.data).into_owned(), shown.len)
            })
            .collect()
    }

    fn shown(list: &[(&str, usize)]) -> Vec<(String, usize)> {
        list.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect()
    }

    #[test]
    fn live_a_secret_split_across_reads_is_masked_at_the_end_of_one_and_the_start_of_the_next() {
        let secret = ["s3cr3t-xyz"];
        let events = [
            event(EventKind::Recv, "127.0.0.1:2", b"auth s3c", 8),
            // Another stream and another direction in between do not break the stream.
            event(EventKind::Recv, "127.0.0.1:3", b"r3t-xyz", 7),
            event(EventKind::Send, "127.0.0.1:2", b"r3t-xyz", 7),
            event(EventKind::Recv, "127.0.0.1:2", b"r3t-xyz ok", 10),
        ];
        assert_eq!(
            live(&secret, &events),
            shown(&[
                ("auth ***", 8),
                ("r3t-xyz", 7),
                ("r3t-xyz", 7),
                ("*** ok", 6)
            ])
        );
        // Over three reads: the middle one is all secret, and the stream stays open after it.
        let events = [
            event(EventKind::Recv, "127.0.0.1:2", b"s3", 2),
            event(EventKind::Recv, "127.0.0.1:2", b"cr3t", 4),
            event(EventKind::Recv, "127.0.0.1:2", b"-xyz and s3cr3t-xyz", 19),
        ];
        assert_eq!(
            live(&secret, &events),
            shown(&[("***", 3), ("***", 3), ("*** and ***", 11)])
        );
    }

    #[test]
    fn live_a_one_byte_start_shows_and_an_innocent_start_shows_as_masked() {
        let secret = ["s3cr3t-xyz"];
        let events = [
            // One byte is not masked where it ends a payload, but the rest is, after it.
            event(EventKind::Recv, "127.0.0.1:2", b"yes", 3),
            event(EventKind::Recv, "127.0.0.1:2", b"3cr3t-xyz!", 10),
            // Two bytes that begin the secret are masked even when no secret follows.
            event(EventKind::Recv, "127.0.0.1:2", b"mis3", 4),
            event(EventKind::Recv, "127.0.0.1:2", b"1", 1),
            // A preview cut short is not continued, nor does it hold its end back.
            event(EventKind::Recv, "127.0.0.1:2", b"ends s3", 2000),
            event(EventKind::Recv, "127.0.0.1:2", b"cr3t-xyz", 8),
        ];
        assert_eq!(
            live(&secret, &events),
            shown(&[
                ("yes", 3),
                ("***!", 4),
                ("mi***", 5),
                ("1", 1),
                ("ends s3", 2000),
                ("cr3t-xyz", 8)
            ])
        );
        let plain = LiveRedactor::new(Redactor::default());
        assert!(matches!(plain.event(&events[0]), Cow::Borrowed(_)));
    }

    #[test]
    fn live_a_whole_secret_whose_end_begins_a_secret_is_masked_whole() {
        // `hunter2` ends with `r2`, the start of `r2d2`; `abcab` ends with its own start.
        let events = [
            event(EventKind::Recv, "127.0.0.1:2", b"pw hunter2", 10),
            event(EventKind::Recv, "127.0.0.1:2", b"d2 ok", 5),
        ];
        assert_eq!(
            live(&["hunter2", "r2d2"], &events),
            shown(&[("pw ***", 6), ("*** ok", 6)])
        );
        let events = [event(EventKind::Send, "127.0.0.1:2", b"pw abcab", 8)];
        assert_eq!(live(&["abcab"], &events), shown(&[("pw ***", 6)]));
    }

    #[test]
    fn a_secret_split_across_two_reads_of_a_stream_is_masked_in_both() {
        let mut o = Outcome::for_test("a.rhai", Status::Passed, None, Duration::ZERO);
        o.transcript = vec![
            event(EventKind::Recv, "127.0.0.1:2", b"auth s3c", 8),
            // Another stream and another direction in between do not break the stream.
            event(EventKind::Recv, "127.0.0.1:3", b"r3t-xyz", 7),
            event(EventKind::Send, "127.0.0.1:2", b"r3t-xyz", 7),
            event(EventKind::Recv, "127.0.0.1:2", b"r3t-xyz ok", 10),
            // A preview cut short is not continued by the next payload.
            event(EventKind::Send, "127.0.0.1:4", b"s3c", 2000),
            event(EventKind::Send, "127.0.0.1:4", b"r3t-xyz", 7),
        ];
        Redactor::new(["s3cr3t-xyz"]).outcome(&mut o);
        let shown: Vec<(&[u8], usize)> =
            o.transcript.iter().map(|e| (&e.data[..], e.len)).collect();
        assert_eq!(
            shown,
            [
                (&b"auth ***"[..], 8),
                (b"r3t-xyz", 7),
                (b"r3t-xyz", 7),
                (b"*** ok", 6),
                (b"s3c", 2000),
                (b"r3t-xyz", 7),
            ]
        );
    }

    #[test]
    fn diagnostics_lose_the_secret_and_keep_their_labels_on_their_words() {
        let source = "let t = \"s3cr3t\"; fail(t);\nconnect(x);\n";
        let at = |word: &str, src: &str| src.find(word).unwrap_or(usize::MAX);
        let diag = Diag {
            code: Code::Custom("bad_s3cr3t".into()),
            message: "failed: s3cr3t".into(),
            file: "a.rhai".into(),
            source: source.into(),
            labels: vec![
                (at("fail", source), 4, "here".into()),
                (at("connect", source), 7, "s3cr3t".into()),
                (at("s3cr3t", source), 6, "the secret".into()),
            ],
            help: Some("left: \"s3cr3t\"".into()),
            line: Some(1),
            on: Default::default(),
            more: Vec::new(),
            failed_in_module: false,
        };
        let mut o = Outcome::for_test("a.rhai", Status::Failed, Some(diag), Duration::ZERO);
        Redactor::new(["s3cr3t"]).outcome(&mut o);
        let Some(d) = o.diagnostic else {
            panic!("the diagnostic went missing")
        };
        assert_eq!(d.message, "failed: ***");
        assert!(
            matches!(&d.code, Code::Custom(k) if k == "bad_***"),
            "{:?}",
            d.code
        );
        assert_eq!(d.help.as_deref(), Some("left: \"***\""));
        assert_eq!(d.source, "let t = \"***\"; fail(t);\nconnect(x);\n");
        let words: Vec<&str> = d
            .labels
            .iter()
            .map(|(o, l, _)| &d.source[*o..*o + *l])
            .collect();
        assert_eq!(words, ["fail", "connect", "***"]);
        assert_eq!(d.labels[1].2, "***");
    }
}
