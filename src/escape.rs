//! Text that sockscript did not write itself (what a peer sent, what a script printed or threw,
//! a script's own source lines, file names, the arguments it was given) made safe to show: the
//! code points a terminal would act on, or a strict XML or YAML parser would reject, become
//! visible escapes (`\x1b`, `\u{202e}`). Every view that writes to the terminal passes such
//! text through here, and so does every report whose format has no escape of its own.
//!
//! Run mode's `print` is the exception by contract: stdout is the script's, so what it prints
//! there reaches stdout byte for byte. Everything on stderr is sockscript's and is escaped.
//!
//! A backslash is left as it is: the escapes are for people to read, not to decode, and a
//! diagnostic full of `\\` would be harder to read than the rare look-alike is worth.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal or a report as it is: the C0 controls (newline and tab
/// included; [`text`] keeps those as layout), DEL, the C1 controls, the bidirectional
/// embeddings, overrides and isolates (they reorder what is shown, as in "Trojan Source"), and
/// the Unicode noncharacters (U+FFFE and U+FFFF, which XML and YAML reject, and the rest).
pub fn is_unsafe(c: char) -> bool {
    let n = u32::from(c);
    c.is_control()
        || matches!(n, 0x202a..=0x202e | 0x2066..=0x2069 | 0xfdd0..=0xfdef)
        || n & 0xfffe == 0xfffe
}

/// Multi-line text (output, messages, help): every unsafe character escaped except newlines
/// and tabs, which are its layout.
pub fn text(s: &str) -> Cow<'_, str> {
    escape_with(s, |c| matches!(c, '\n' | '\t'))
}

/// What a peer sends, shown live on a terminal (`interactive()`): like [`text`], with carriage
/// returns kept too (CRLF protocols read as they do in `nc`).
pub fn terminal(s: &str) -> Cow<'_, str> {
    escape_with(s, |c| matches!(c, '\n' | '\t' | '\r'))
}

/// One line (a file name, an address, a task name): newlines and tabs escaped too.
pub fn line(s: &str) -> Cow<'_, str> {
    escape_with(s, |_| false)
}

/// Append the visible form of `c`: `\n`, `\r` and `\t` by name, other ASCII as `\xHH`,
/// the rest as `\u{h}`, as Rust writes them.
pub fn push_escaped(out: &mut String, c: char) {
    let _ = match c {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        c if c.is_ascii() => write!(out, "\\x{:02x}", u32::from(c)),
        c => write!(out, "\\u{{{:x}}}", u32::from(c)),
    };
}

/// `s` with every unsafe character escaped except those `keep` accepts.
fn escape_with(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    let unsafe_here = |c: char| is_unsafe(c) && !keep(c);
    let Some(first) = s.find(unsafe_here) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len() + 16);
    out.push_str(&s[..first]);
    for c in s[first..].chars() {
        if unsafe_here(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A script's source as a diagnostic shows it: escaped like [`text`], except that `\r` ending
/// a line is kept (a file with CRLF line endings reads as it is). `moved` gives, for a byte
/// offset into `source` at a character boundary, the offset of the same place in the result,
/// so labels still point at their words.
pub fn source(source: &str) -> (Cow<'_, str>, impl Fn(usize) -> usize) {
    let mut out = String::new();
    // (offset in `source` just after an escaped character, bytes added so far).
    let mut grown: Vec<(usize, usize)> = Vec::new();
    let mut chars = source.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let line_end = c == '\r' && matches!(chars.peek(), Some((_, '\n')));
        if !is_unsafe(c) || matches!(c, '\n' | '\t') || line_end {
            continue;
        }
        if grown.is_empty() {
            out.reserve(source.len() + 16);
        }
        let (done, extra) = grown.last().copied().unwrap_or_default();
        out.push_str(&source[done..i]);
        let before = out.len();
        push_escaped(&mut out, c);
        let after = i + c.len_utf8();
        grown.push((after, extra + (out.len() - before) - c.len_utf8()));
    }
    let shown = match grown.last() {
        None => Cow::Borrowed(source),
        Some(&(done, _)) => {
            out.push_str(&source[done..]);
            Cow::Owned(out)
        }
    };
    let moved = move |offset: usize| {
        let k = grown.partition_point(|&(end, _)| end <= offset);
        offset + k.checked_sub(1).map_or(0, |k| grown[k].1)
    };
    (shown, moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_bidi_and_noncharacters_become_visible() {
        assert_eq!(
            text("a\x1b[2J\x1b]52;c;aGVsbG8=\x07 \x7f\u{9b}\u{202e}\u{2066}\u{fffe}\u{ffff}\u{fdd0}\u{10ffff}\r\0"),
            "a\\x1b[2J\\x1b]52;c;aGVsbG8=\\x07 \\x7f\\u{9b}\\u{202e}\\u{2066}\\u{fffe}\\u{ffff}\\u{fdd0}\\u{10ffff}\\r\\x00"
        );
        assert_eq!(text("two\n\tlines"), "two\n\tlines");
        assert_eq!(line("two\n\tlines"), "two\\n\\tlines");
    }

    #[test]
    fn safe_text_is_borrowed_as_it_is() {
        for s in [
            "",
            "plain ascii \\x1b",
            "é ü 日本 \u{200f}\u{fffd}\u{fffc} 🦀",
        ] {
            assert!(matches!(text(s), Cow::Borrowed(t) if t == s), "{s:?}");
        }
    }

    #[test]
    fn what_is_unsafe() {
        let bad = [
            '\0',
            '\x1b',
            '\x7f',
            '\u{80}',
            '\u{9f}',
            '\u{202a}',
            '\u{202e}',
            '\u{2069}',
            '\u{fdd0}',
            '\u{fdef}',
            '\u{fffe}',
            '\u{1fffe}',
            '\u{10ffff}',
        ];
        let good = [
            ' ', '~', '\u{a0}', '\u{2029}', '\u{2070}', '\u{fdcf}', '\u{fdf0}', '\u{fffd}',
        ];
        assert!(bad.iter().all(|&c| is_unsafe(c)));
        assert!(!good.iter().any(|&c| is_unsafe(c)));
    }

    #[test]
    fn source_keeps_crlf_and_moves_offsets() {
        let src = "a = \"\x1b[2J\";\r\nb\u{202e}c = 1;\rx";
        let (shown, moved) = source(src);
        assert_eq!(shown, "a = \"\\x1b[2J\";\r\nb\\u{202e}c = 1;\\rx");
        for word in ["[2J", "a =", "c = 1", "x"] {
            let at = src.find(word).unwrap_or_default();
            let to = moved(at);
            assert_eq!(&shown[to..to + word.len()], word, "{word}");
        }
        assert_eq!(moved(src.len()), shown.len());
        let (same, moved) = source("let a = 1;\r\n");
        assert!(matches!(same, Cow::Borrowed(_)));
        assert_eq!(moved(4), 4);
    }
}
