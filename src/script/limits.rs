//! Byte limits that rhai does not check itself: results our functions build (`to_hex`,
//! `hexdump`, `pack`) are sized and checked before anything is allocated, values queued on a
//! channel are estimated, and what a scenario prints in test mode is cut at `--limit output`.
//! rhai's own checks (strings, arrays, Blobs, maps) are set in `engine.rs`.

use std::sync::Mutex;

use rhai::{Dynamic, NativeCallContext};

use super::engine::{ELEMENT_BYTES, MAP_ENTRY_BYTES};
use super::error::{script_error, ScriptResult};
use crate::net::ErrorKind;

/// `1MiB`, `64KiB`, `1000`: a size as `--limit` takes it.
pub fn size_text(n: usize) -> String {
    for (unit, scale) in [("GiB", 1usize << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n >= scale && n % scale == 0 {
            return format!("{}{unit}", n / scale);
        }
    }
    n.to_string()
}

/// rhai's "0 is no limit" as a number to compare with.
fn or_none(limit: usize) -> usize {
    if limit == 0 {
        usize::MAX
    } else {
        limit
    }
}

/// The `--limit data` of the engine running this call: rhai's string limit is set to it.
pub fn data_limit(ctx: &NativeCallContext) -> usize {
    or_none(ctx.engine().max_string_size())
}

/// The most bytes a Blob may hold: rhai counts them as array elements, at `ELEMENT_BYTES` each
/// against `--limit data`.
pub fn blob_limit(ctx: &NativeCallContext) -> usize {
    or_none(ctx.engine().max_array_size())
}

/// Error kind `limit` unless text of `size` bytes (`None`: too many to count) fits a string.
pub fn check_text(ctx: &NativeCallContext, op: &str, size: Option<usize>) -> ScriptResult<()> {
    let limit = data_limit(ctx);
    match size {
        Some(n) if n <= limit => Ok(()),
        _ => Err(script_error(
            ErrorKind::Limit,
            op,
            format!(
                "{op}: the text would be {}, over `--limit data={}`",
                bytes_text(size),
                size_text(limit)
            ),
        )),
    }
}

/// Error kind `limit` unless a Blob of `size` bytes fits: rhai counts a Blob's bytes as array
/// elements, so a Blob may hold `data / ELEMENT_BYTES` bytes.
pub fn check_blob(ctx: &NativeCallContext, op: &str, size: Option<usize>) -> ScriptResult<()> {
    let limit = blob_limit(ctx);
    match size {
        Some(n) if n <= limit => Ok(()),
        _ => Err(script_error(
            ErrorKind::Limit,
            op,
            format!(
                "{op}: the Blob would be {}, over the {limit} bytes a Blob may hold under \
                 `--limit data={}`",
                bytes_text(size),
                size_text(data_limit(ctx))
            ),
        )),
    }
}

fn bytes_text(size: Option<usize>) -> String {
    size.map_or_else(
        || "too many bytes to count".into(),
        |n| format!("{n} bytes"),
    )
}

/// How deep arrays, maps and closures may nest. rhai clones, checks and drops values by
/// recursion, so a deeper value would overflow a thread's stack and abort the whole run.
pub const MAX_NESTING: usize = 256;

/// What a value holds, the way `--limit data` counts it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Measure {
    /// An estimate of its bytes: a string's and a Blob's bytes, `ELEMENT_BYTES` an array
    /// element and `MAP_ENTRY_BYTES` (plus the key) a map entry, nested values and the values
    /// curried into a function pointer (a closure's captures) included; any other value is its
    /// `Dynamic`. Spare capacity and the allocator's own overhead are not counted.
    pub bytes: usize,
    /// The part of `bytes` that rhai's own data check does not see: what function pointers and
    /// closures hold, at any depth.
    pub hidden: usize,
    /// The values walked: what measuring it again costs.
    pub values: usize,
    /// How deep it nests (a plain value is 0); past `MAX_NESTING` it is not walked further and
    /// its bytes count as unbounded.
    pub depth: usize,
}

/// Walk `value` (no deeper than `MAX_NESTING`).
pub fn measure(value: &Dynamic) -> Measure {
    let mut m = Measure::default();
    walk(value, 0, false, &mut m);
    m
}

/// An estimate of the bytes `value` holds (see [`Measure::bytes`]).
pub fn estimated_size(value: &Dynamic) -> usize {
    measure(value).bytes
}

/// Add `value`, found at `depth` (inside a function pointer when `hidden`), to `m`.
fn walk(value: &Dynamic, depth: usize, hidden: bool, m: &mut Measure) {
    m.depth = m.depth.max(depth);
    m.values = m.values.saturating_add(1);
    if depth > MAX_NESTING {
        m.bytes = usize::MAX;
        m.hidden = usize::MAX;
        return;
    }
    let mut own = ELEMENT_BYTES;
    if let Ok(text) = value.as_immutable_string_ref() {
        own += text.len();
    } else if let Ok(blob) = value.as_blob_ref() {
        own += blob.len();
    } else if let Ok(array) = value.as_array_ref() {
        for v in array.iter() {
            walk(v, depth + 1, hidden, m);
        }
    } else if let Ok(map) = value.as_map_ref() {
        for (k, v) in map.iter() {
            own = own.saturating_add(MAP_ENTRY_BYTES - ELEMENT_BYTES + k.len());
            walk(v, depth + 1, hidden, m);
        }
    } else if let Some(f) = value.read_lock::<rhai::FnPtr>() {
        for v in f.iter_curry() {
            walk(v, depth + 1, true, m);
        }
    }
    m.bytes = m.bytes.saturating_add(own);
    if hidden {
        m.hidden = m.hidden.saturating_add(own);
    }
}

/// What a scenario may print in test mode, where its output is kept for the reports: the first
/// `limit` bytes are kept, the rest counted and dropped.
pub struct Printed {
    limit: usize,
    /// (bytes kept, bytes dropped)
    counts: Mutex<(usize, usize)>,
    /// Something was dropped: read on every rhai operation, so a load, not the lock.
    over: std::sync::atomic::AtomicBool,
}

impl Printed {
    /// `None`: no limit (run mode prints straight to stdout and keeps nothing).
    pub fn new(limit: Option<usize>) -> Printed {
        Printed {
            limit: limit.unwrap_or(usize::MAX),
            counts: Mutex::new((0, 0)),
            over: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The part of the line `text` that fits (all of it, some of it, or nothing); the rest
    /// is counted as dropped. A line counts its newline.
    pub fn admit<'a>(&self, text: &'a str) -> Option<&'a str> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let (kept, dropped) = &mut *counts;
        let wanted = text.len().saturating_add(1);
        let room = self.limit - *kept;
        if *dropped == 0 && wanted <= room {
            *kept += wanted;
            return Some(text);
        }
        self.over.store(true, std::sync::atomic::Ordering::Relaxed);
        if *dropped > 0 || room == 0 {
            *dropped = dropped.saturating_add(wanted);
            return None;
        }
        // Keep what fits, cut at a character boundary, with its newline.
        let mut cut = room - 1;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        *kept += cut + 1;
        *dropped = wanted - (cut + 1);
        Some(&text[..cut])
    }

    /// Whether anything was printed past the limit.
    pub fn is_over(&self) -> bool {
        self.over.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Bytes printed past the limit, and dropped.
    pub fn dropped(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).1
    }

    /// The line that ends a cut output.
    pub fn marker(&self) -> String {
        format!(
            "[output truncated: {} bytes over `--limit output={}`]",
            self.dropped(),
            size_text(self.limit)
        )
    }

    /// The error of a scenario that printed past the limit.
    pub fn message(&self) -> String {
        format!(
            "the scenario printed {} bytes more than `--limit output={}`; its output is cut there",
            self.dropped(),
            size_text(self.limit)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_the_flag() {
        assert_eq!(size_text(1 << 20), "1MiB");
        assert_eq!(size_text(64 << 10), "64KiB");
        assert_eq!(size_text(3 << 30), "3GiB");
        assert_eq!(size_text(1000), "1000");
        assert_eq!(size_text(0), "0");
    }

    #[test]
    fn printed_keeps_what_fits_and_counts_the_rest() {
        let p = Printed::new(Some(10));
        assert_eq!(p.admit("abcd"), Some("abcd"));
        // 5 bytes left: 4 of text and the newline.
        assert_eq!(p.admit("efghij"), Some("efgh"));
        assert_eq!(p.dropped(), 2);
        assert_eq!(p.admit("x"), None);
        assert_eq!(p.dropped(), 4);
        assert!(p.marker().contains("4 bytes over `--limit output=10`"));
        // A cut never splits a character.
        let p = Printed::new(Some(3));
        assert_eq!(p.admit("éé"), Some("é"));
        assert_eq!(Printed::new(None).admit("all"), Some("all"));
    }

    #[test]
    fn estimates_count_nested_values() {
        let array: rhai::Array = vec![Dynamic::from(1_i64), Dynamic::from("abc")];
        let value = Dynamic::from_array(vec![Dynamic::from_array(array)]);
        // Outer array, inner array, the integer, the string and its 3 bytes.
        assert_eq!(estimated_size(&value), 4 * ELEMENT_BYTES + 3);
        assert_eq!(
            estimated_size(&Dynamic::from_blob(vec![0; 100])),
            ELEMENT_BYTES + 100
        );
        let m = measure(&value);
        assert_eq!((m.values, m.depth, m.hidden), (4, 2, 0));
    }

    #[test]
    fn measures_stop_past_the_nesting_limit() {
        let mut value = Dynamic::from_array(Vec::new());
        for _ in 0..MAX_NESTING + 10 {
            value = Dynamic::from_array(vec![value]);
        }
        let m = measure(&value);
        assert_eq!(m.depth, MAX_NESTING + 1);
        assert_eq!(m.bytes, usize::MAX);
    }
}
