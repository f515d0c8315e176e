//! Binary helpers for scripts: `hex` literals, `to_hex`, `hexdump`, and struct-style `pack`,
//! `unpack`, `unpack_from` and `calcsize`. All of it is pure byte shuffling over rhai Blobs; the
//! sockets that send and receive those Blobs live in `net.rs`. Blob to text is rhai's own
//! `as_string`, so it is not repeated here. Every result sized by its input is sized first,
//! with checked arithmetic, and refused (kind `limit`) before anything is allocated.

use std::fmt::Write as _;

use rhai::plugin::*;
use rhai::{Array, Blob, Dynamic, Engine, FLOAT, INT};

use super::error::{script_error, ScriptResult};
use super::limits::{blob_limit, check_blob, check_text};
use crate::net::ErrorKind;

pub fn register(engine: &mut Engine) {
    engine.register_global_module(exported_module!(binary_fns).into());
}

// The glue rhai generates for a `&mut` first argument unwraps the lock it has just taken.
#[allow(clippy::unwrap_used)]
#[export_module]
mod binary_fns {
    use super::{Array, Blob, ScriptResult, INT};
    use rhai::NativeCallContext;

    /// Bytes written as hex digits. Bytes may be separated by spaces, `:` or `-`, and prefixed
    /// by `0x`, each one or once at the start; a bad digit or an odd number of digits is an
    /// `invalid_argument` error naming its position (in characters, from 0).
    ///
    /// ```rhai
    /// let ping = hex("de ad be ef");
    /// assert_eq(ping, hex("DE:AD:BE:EF"));
    /// assert_eq(hex("0x0102"), hex("0x01 0x02"));
    /// ```
    #[rhai_fn(return_raw)]
    pub fn hex(ctx: NativeCallContext, text: &str) -> ScriptResult<Blob> {
        super::parse_hex(&ctx, text)
    }

    /// The Blob as lowercase hex digits, two a byte, without separators.
    ///
    /// ```rhai
    /// print(pack(">H", [258]).to_hex());     // prints "0102"
    /// ```
    #[rhai_fn(name = "to_hex", pure, return_raw)]
    pub fn blob_to_hex(ctx: NativeCallContext, blob: &mut Blob) -> ScriptResult<String> {
        super::to_hex(&ctx, blob, "")
    }

    /// The Blob as lowercase hex digits with `sep` between the bytes.
    ///
    /// ```rhai
    /// print(to_hex(hex("cafe01"), " "));     // prints "ca fe 01"
    /// print(hex("cafe01").to_hex(":"));      // prints "ca:fe:01"
    /// ```
    #[rhai_fn(name = "to_hex", pure, return_raw)]
    pub fn blob_to_hex_with(
        ctx: NativeCallContext,
        blob: &mut Blob,
        sep: &str,
    ) -> ScriptResult<String> {
        super::to_hex(&ctx, blob, sep)
    }

    /// A multi-line dump of the Blob: 16 bytes a line, with offsets and the printable ASCII.
    ///
    /// ```rhai
    /// print(hexdump(conn.recv_bytes()));
    /// // 00000000  48 65 6c 6c 6f 0a                                 |Hello.|
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn hexdump(ctx: NativeCallContext, blob: &mut Blob) -> ScriptResult<String> {
        // 16 bytes a line of at most 79 characters (offset, hex, ASCII and the newline).
        let size = blob.len().div_ceil(16).checked_mul(79);
        check_text(&ctx, "hexdump", size)?;
        Ok(crate::transcript::hexdump(blob))
    }

    /// Pack `values` into bytes as `fmt` says, like Python's `struct.pack`. The format may start
    /// with a byte order: `>` or `!` big-endian (network order, the default when none is
    /// given), `<` little-endian. Then codes, each with an optional repeat count (`3H` is
    /// `HHH`): `b`/`B` i8/u8, `h`/`H` i16/u16, `i`/`I` i32/u32, `q`/`Q` i64/u64, `f`/`d`
    /// f32/f64, `?` bool, `x` a zero pad byte (takes no value), `Ns` N raw bytes from a Blob
    /// or a string's UTF-8 (zero-padded when shorter). Spaces between codes are ignored. A
    /// value out of range for its code, or a wrong number of values, is an `invalid_argument`
    /// error.
    ///
    /// ```rhai
    /// let body = "hello";
    /// let frame = pack(">H", [body.len()]) + body.to_blob();   // 2-byte length prefix
    /// assert_eq(frame, pack(`>H${body.len()}s`, [body.len(), body]));
    /// assert_eq(pack("<HI", [1, 2]), hex("0100 02000000"));
    /// ```
    #[rhai_fn(return_raw)]
    pub fn pack(ctx: NativeCallContext, fmt: &str, values: Array) -> ScriptResult<Blob> {
        super::pack(&ctx, fmt, &values)
    }

    /// Unpack a Blob into an array of values as `fmt` says (see `pack` for the format; big-endian
    /// unless it starts with `<`). The Blob must be exactly `calcsize(fmt)` bytes long. Integers
    /// come back as integers, `f`/`d` as floats, `?` as bools, `Ns` as Blobs; a `Q` above the
    /// largest script integer (2^63 - 1) is an error.
    ///
    /// ```rhai
    /// let fields = unpack(">BH", hex("02 0010"));
    /// assert_eq(fields, [2, 16]);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn unpack(ctx: NativeCallContext, fmt: &str, blob: Blob) -> ScriptResult<Array> {
        super::unpack(&ctx, "unpack", fmt, &blob, 0, true)
    }

    /// Unpack `calcsize(fmt)` bytes of the Blob starting at `offset`, ignoring the bytes after
    /// them: for reading a header off the front of a larger message.
    ///
    /// ```rhai
    /// let msg = hex("0005 68656c6c6f");
    /// let len = unpack_from(">H", msg, 0)[0];
    /// let body = unpack_from(`${len}s`, msg, 2)[0];
    /// print(body.as_string());   // prints "hello"
    /// ```
    #[rhai_fn(return_raw)]
    pub fn unpack_from(
        ctx: NativeCallContext,
        fmt: &str,
        blob: Blob,
        offset: INT,
    ) -> ScriptResult<Array> {
        let offset = usize::try_from(offset).map_err(|_| {
            super::invalid(
                "unpack_from",
                format!("the offset cannot be negative ({offset})"),
            )
        })?;
        super::unpack(&ctx, "unpack_from", fmt, &blob, offset, false)
    }

    /// The number of bytes `fmt` packs into (see `pack` for the format).
    ///
    /// ```rhai
    /// assert_eq(calcsize(">HI 4s x"), 11);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn calcsize(ctx: NativeCallContext, fmt: &str) -> ScriptResult<INT> {
        let format = super::Format::parse(&ctx, "calcsize", fmt)?;
        Ok(INT::try_from(format.size).unwrap_or(INT::MAX))
    }
}

fn invalid(op: &str, why: impl std::fmt::Display) -> Box<rhai::EvalAltResult> {
    script_error(ErrorKind::InvalidArgument, op, format!("{op}: {why}"))
}

fn is_hex_separator(c: char) -> bool {
    c.is_whitespace() || c == ':' || c == '-'
}

/// Groups between separators, each an optional `0x` and an even number of digits. Positions
/// in errors count characters, from 0. The Blob never grows past what a Blob may hold.
fn parse_hex(ctx: &NativeCallContext, text: &str) -> ScriptResult<Blob> {
    let max = blob_limit(ctx);
    let mut out = Vec::with_capacity((text.len() / 2).min(max));
    let mut at = 0;
    for group in text.split(is_hex_separator) {
        let start = at;
        // The group's characters and the one separator after it.
        at += group.chars().count() + 1;
        if group.is_empty() {
            continue;
        }
        let (first, digits) = match group
            .strip_prefix("0x")
            .or_else(|| group.strip_prefix("0X"))
        {
            Some(rest) => (start + 2, rest),
            None => (start, group),
        };
        if digits.is_empty() {
            return Err(invalid(
                "hex",
                format!("`0x` at position {start} has no digits after it"),
            ));
        }
        if let Some((i, c)) = digits
            .chars()
            .enumerate()
            .find(|(_, c)| !c.is_ascii_hexdigit())
        {
            return Err(invalid(
                "hex",
                format!("`{c}` at position {} is not a hex digit", first + i),
            ));
        }
        // Every character is an ASCII digit now: one byte each.
        if digits.len() % 2 == 1 {
            return Err(invalid(
                "hex",
                format!(
                    "`{group}` at position {start} has an odd number of hex digits ({}): a byte takes two",
                    digits.len()
                ),
            ));
        }
        if out.len() + digits.len() / 2 > max {
            return Err(script_error(
                ErrorKind::Limit,
                "hex",
                format!(
                    "hex: the Blob would be more than the {max} bytes a Blob may hold under \
                     `--limit data={}`",
                    super::limits::size_text(super::limits::data_limit(ctx))
                ),
            ));
        }
        let nibble = |b: u8| char::from(b).to_digit(16).unwrap_or(0) as u8;
        out.extend(
            digits
                .as_bytes()
                .chunks(2)
                .map(|pair| nibble(pair[0]) << 4 | nibble(pair[1])),
        );
    }
    Ok(out)
}

/// Two digits a byte and `sep` between bytes, sized and checked against the data limit first:
/// a long separator multiplies the Blob's length.
fn to_hex(ctx: &NativeCallContext, blob: &[u8], sep: &str) -> ScriptResult<String> {
    let size = blob
        .len()
        .checked_mul(2)
        .and_then(|n| n.checked_add(blob.len().saturating_sub(1).checked_mul(sep.len())?));
    check_text(ctx, "to_hex", size)?;
    let mut out = String::with_capacity(size.unwrap_or(0));
    for (i, b) in blob.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        let _ = write!(out, "{b:02x}");
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Code {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
    Bool,
    Pad,
    Bytes,
}

impl Code {
    fn of(c: char) -> Option<Code> {
        Some(match c {
            'b' => Code::I8,
            'B' => Code::U8,
            'h' => Code::I16,
            'H' => Code::U16,
            'i' => Code::I32,
            'I' => Code::U32,
            'q' => Code::I64,
            'Q' => Code::U64,
            'f' => Code::F32,
            'd' => Code::F64,
            '?' => Code::Bool,
            'x' => Code::Pad,
            's' => Code::Bytes,
            _ => return None,
        })
    }

    fn width(self) -> usize {
        match self {
            Code::I8 | Code::U8 | Code::Bool | Code::Pad | Code::Bytes => 1,
            Code::I16 | Code::U16 => 2,
            Code::I32 | Code::U32 | Code::F32 => 4,
            Code::I64 | Code::U64 | Code::F64 => 8,
        }
    }

    /// What a script integer must lie in for this code; `Q` stops at `INT::MAX`.
    fn int_range(self) -> Option<(INT, INT)> {
        Some(match self {
            Code::I8 => (i8::MIN.into(), i8::MAX.into()),
            Code::U8 => (0, u8::MAX.into()),
            Code::I16 => (i16::MIN.into(), i16::MAX.into()),
            Code::U16 => (0, u16::MAX.into()),
            Code::I32 => (i32::MIN.into(), i32::MAX.into()),
            Code::U32 => (0, u32::MAX.into()),
            Code::I64 => (INT::MIN, INT::MAX),
            Code::U64 => (0, INT::MAX),
            _ => return None,
        })
    }

    fn signed(self) -> bool {
        matches!(self, Code::I8 | Code::I16 | Code::I32 | Code::I64)
    }
}

/// One code of a format with its repeat count: `3H` is one item; `4s` is one value of 4 bytes.
#[derive(Debug, Clone, Copy)]
struct Item {
    code: Code,
    count: usize,
    letter: char,
}

impl Item {
    fn values(&self) -> usize {
        match self.code {
            Code::Pad => 0,
            Code::Bytes => 1,
            _ => self.count,
        }
    }

    /// How the item reads in a message: `H`, or `4s` where the count is part of the meaning.
    fn name(&self) -> String {
        match self.code {
            Code::Bytes => format!("{}s", self.count),
            _ => self.letter.to_string(),
        }
    }
}

#[derive(Debug)]
struct Format {
    little: bool,
    items: Vec<Item>,
    size: usize,
    values: usize,
}

impl Format {
    /// A format that packs more than a Blob may hold is refused (kind `limit`) as it is read:
    /// `pack` allocates its size whole.
    fn parse(ctx: &NativeCallContext, op: &str, fmt: &str) -> ScriptResult<Format> {
        let bad = |why: String| invalid(op, format!("{why} in format `{fmt}`"));
        let mut chars = fmt.chars().enumerate().peekable();
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let order = chars.next_if(|(_, c)| matches!(c, '<' | '>' | '!'));
        let little = matches!(order, Some((_, '<')));
        let mut items = Vec::new();
        let (mut size, mut values) = (0usize, 0usize);
        while let Some((at, c)) = chars.next() {
            if c.is_whitespace() {
                continue;
            }
            let (count, letter, letter_at) = if let Some(d) = c.to_digit(10) {
                let mut count = d as usize;
                while let Some((_, d)) = chars.next_if(|(_, c)| c.is_ascii_digit()) {
                    count = count
                        .checked_mul(10)
                        .and_then(|n| n.checked_add(d.to_digit(10).map_or(0, |d| d as usize)))
                        .ok_or_else(|| bad(format!("the count at position {at} is too large")))?;
                }
                match chars.next() {
                    Some((i, c)) if !c.is_whitespace() => (count, c, i),
                    _ => {
                        return Err(bad(format!(
                            "the count at position {at} is not followed by a format code"
                        )))
                    }
                }
            } else {
                (1, c, at)
            };
            let Some(code) = Code::of(letter) else {
                if matches!(letter, '<' | '>' | '!') {
                    return Err(bad(format!(
                        "byte order `{letter}` at position {letter_at} must come first"
                    )));
                }
                return Err(invalid(
                    op,
                    format!(
                        "unknown format code `{letter}` at position {letter_at} in format `{fmt}` \
                         (known: b B h H i I q Q f d ? x s)"
                    ),
                ));
            };
            let item = Item {
                code,
                count,
                letter,
            };
            let grown = count
                .checked_mul(code.width())
                .and_then(|n| n.checked_add(size));
            check_blob(ctx, op, grown).map_err(|_| {
                script_error(
                    ErrorKind::Limit,
                    op,
                    format!(
                        "{op}: format `{fmt}` is larger than a Blob may hold at position {at} \
                         (`--limit data={}`)",
                        super::limits::size_text(super::limits::data_limit(ctx))
                    ),
                )
            })?;
            size = grown.unwrap_or(usize::MAX);
            values += item.values();
            items.push(item);
        }
        Ok(Format {
            little,
            items,
            size,
            values,
        })
    }
}

fn put_uint(out: &mut Vec<u8>, value: u64, width: usize, little: bool) {
    if little {
        out.extend_from_slice(&value.to_le_bytes()[..width]);
    } else {
        out.extend_from_slice(&value.to_be_bytes()[8 - width..]);
    }
}

fn get_uint(bytes: &[u8], little: bool) -> u64 {
    let fold = |n: u64, &b: &u8| n << 8 | u64::from(b);
    if little {
        bytes.iter().rev().fold(0, fold)
    } else {
        bytes.iter().fold(0, fold)
    }
}

fn pack(ctx: &NativeCallContext, fmt: &str, values: &[Dynamic]) -> ScriptResult<Blob> {
    let format = Format::parse(ctx, "pack", fmt)?;
    let wrong_count = || {
        invalid(
            "pack",
            format!(
                "format `{fmt}` expects {} values, got {}",
                format.values,
                values.len()
            ),
        )
    };
    if values.len() != format.values {
        return Err(wrong_count());
    }
    let mut out = Vec::with_capacity(format.size);
    let mut values = values.iter().enumerate();
    for item in &format.items {
        let reps = match item.code {
            Code::Pad => {
                out.resize(out.len() + item.count, 0);
                continue;
            }
            Code::Bytes => 1,
            _ => item.count,
        };
        for _ in 0..reps {
            let (index, value) = values.next().ok_or_else(wrong_count)?;
            pack_value(&mut out, item, index, value, format.little)?;
        }
    }
    Ok(out)
}

fn pack_value(
    out: &mut Vec<u8>,
    item: &Item,
    index: usize,
    value: &Dynamic,
    little: bool,
) -> ScriptResult<()> {
    let name = item.name();
    let wrong_type = |wanted: &str| {
        invalid(
            "pack",
            format!(
                "value at index {index} must be {wanted} for `{name}`, not {}",
                value.type_name()
            ),
        )
    };
    let code = item.code;
    match code {
        Code::F32 | Code::F64 => {
            let x = match (value.as_float(), value.as_int()) {
                (Ok(x), _) => x,
                // Integers are exact in a float up to 2^53; beyond that, rounding is expected.
                (_, Ok(n)) => n as FLOAT,
                _ => return Err(wrong_type("a number")),
            };
            if code == Code::F64 {
                put_uint(out, x.to_bits(), 8, little);
            } else {
                if x.is_finite() && x.abs() > FLOAT::from(f32::MAX) {
                    return Err(invalid(
                        "pack",
                        format!("value at index {index} is {x}, out of range for `f` (f32)"),
                    ));
                }
                put_uint(out, u64::from((x as f32).to_bits()), 4, little);
            }
        }
        Code::Bool => {
            let b = value.as_bool().map_err(|_| wrong_type("a bool"))?;
            out.push(u8::from(b));
        }
        Code::Bytes => {
            let bytes: Vec<u8> = if let Some(blob) = value.read_lock::<Blob>() {
                blob.clone()
            } else if let Some(text) = value.read_lock::<rhai::ImmutableString>() {
                text.as_bytes().to_vec()
            } else {
                return Err(wrong_type("a blob or a string"));
            };
            if bytes.len() > item.count {
                return Err(invalid(
                    "pack",
                    format!(
                        "value at index {index} is {} bytes, longer than the {} of `{name}`",
                        bytes.len(),
                        item.count
                    ),
                ));
            }
            out.extend_from_slice(&bytes);
            out.resize(out.len() + item.count - bytes.len(), 0);
        }
        Code::Pad => {}
        _ => {
            let n = value.as_int().map_err(|_| wrong_type("an integer"))?;
            if let Some((min, max)) = code.int_range() {
                if n < min || n > max {
                    return Err(invalid(
                        "pack",
                        format!(
                            "value at index {index} is {n}, out of range for `{name}` ({min} to {max})"
                        ),
                    ));
                }
            }
            // Two's complement: the low bytes of the i64 are the bytes of the narrower type.
            put_uint(out, n as u64, code.width(), little);
        }
    }
    Ok(())
}

/// `exact`: the Blob from `offset` must be the format's size, not merely at least that.
fn unpack(
    ctx: &NativeCallContext,
    op: &str,
    fmt: &str,
    blob: &[u8],
    offset: usize,
    exact: bool,
) -> ScriptResult<Array> {
    let format = Format::parse(ctx, op, fmt)?;
    let available = blob.len().saturating_sub(offset);
    if exact && blob.len() != format.size {
        return Err(invalid(
            op,
            format!(
                "format `{fmt}` needs {} bytes, got {}",
                format.size,
                blob.len()
            ),
        ));
    }
    if available < format.size {
        return Err(invalid(
            op,
            format!(
                "format `{fmt}` needs {} bytes at offset {offset}, but only {available} of the blob's {} are there",
                format.size,
                blob.len()
            ),
        ));
    }
    let mut at = offset;
    let mut out = Array::with_capacity(format.values);
    for item in &format.items {
        let code = item.code;
        match code {
            Code::Pad => at += item.count,
            Code::Bytes => {
                out.push(Dynamic::from_blob(blob[at..at + item.count].to_vec()));
                at += item.count;
            }
            _ => {
                for _ in 0..item.count {
                    let width = code.width();
                    let bits = get_uint(&blob[at..at + width], format.little);
                    at += width;
                    out.push(unpack_value(op, item, out.len(), bits)?);
                }
            }
        }
    }
    Ok(out)
}

fn unpack_value(op: &str, item: &Item, index: usize, bits: u64) -> ScriptResult<Dynamic> {
    let code = item.code;
    Ok(match code {
        // The bits came from 4 bytes, so they fit a u32.
        Code::F32 => FLOAT::from(f32::from_bits(bits as u32)).into(),
        Code::F64 => FLOAT::from_bits(bits).into(),
        Code::Bool => (bits != 0).into(),
        _ if code.signed() => {
            // Sign-extend from the code's width.
            let shift = 64 - 8 * code.width();
            ((bits << shift) as INT >> shift).into()
        }
        _ => INT::try_from(bits)
            .map_err(|_| {
                invalid(
                    op,
                    format!(
                        "`{}` value at index {index} is {bits}, larger than the largest script integer ({})",
                        item.name(),
                        INT::MAX
                    ),
                )
            })?
            .into(),
    })
}

#[cfg(test)]
mod tests {
    use rhai::{Array, Blob, Dynamic, Engine, INT};

    use crate::net::ErrorKind;
    use crate::script::error::catchable_map;

    fn engine() -> Engine {
        let mut engine = Engine::new();
        crate::script::engine::set_limits(&mut engine, &crate::script::Limits::default());
        super::register(&mut engine);
        engine
    }

    /// The kind and message `script` fails with, under `--limit data=1KiB`.
    fn small_limit_error(script: &str) -> (Option<ErrorKind>, String) {
        let mut engine = Engine::new();
        let limits = crate::script::Limits {
            max_data: 1024,
            ..crate::script::Limits::default()
        };
        crate::script::engine::set_limits(&mut engine, &limits);
        super::register(&mut engine);
        let err = match engine.eval::<Dynamic>(script) {
            Ok(v) => panic!("{script}: expected an error, got {v:?}"),
            Err(err) => err,
        };
        let map = catchable_map(&err);
        let get = |k: &str| map.get(k).map(|v| v.to_string()).unwrap_or_default();
        (ErrorKind::parse(&get("kind")), get("message"))
    }

    #[test]
    fn results_are_sized_before_they_are_built() {
        // 64 bytes (the most a Blob holds under 1KiB) with a separator of 1000: 63 KB of text.
        let long_sep = r#"let sep = ""; sep.pad(1000, "-"); to_hex(blob(64, 1), sep)"#;
        let (kind, message) = small_limit_error(long_sep);
        assert_eq!(kind, Some(ErrorKind::Limit), "{message}");
        assert!(
            message.contains("63128 bytes, over `--limit data=1KiB`"),
            "{message}"
        );
        // (`hexdump` is checked too, but writes 5 bytes a byte: a Blob that fits has a dump that
        // fits, as a Blob holds a sixteenth of the limit.)
        let (kind, message) = small_limit_error(r#"pack("100x", [])"#);
        assert_eq!(kind, Some(ErrorKind::Limit), "{message}");
        assert!(message.contains("larger than a Blob may hold"), "{message}");
        let (kind, _) = small_limit_error(r#"calcsize("1000000000B")"#);
        assert_eq!(kind, Some(ErrorKind::Limit));
        // An overflowing size is refused the same way, not wrapped around.
        let (kind, _) = small_limit_error(r#"calcsize("9223372036854775807q")"#);
        assert_eq!(kind, Some(ErrorKind::Limit));
        // 65 bytes of hex text under a 64-byte Blob limit.
        let (kind, message) = small_limit_error(&format!("hex({:?})", "ab".repeat(65)));
        assert_eq!(kind, Some(ErrorKind::Limit), "{message}");
        assert!(
            message.contains("the 64 bytes a Blob may hold"),
            "{message}"
        );
    }

    fn eval<T: std::any::Any>(script: &str) -> T {
        let value = engine()
            .eval::<Dynamic>(script)
            .unwrap_or_else(|e| panic!("{script}: {e}"));
        let type_name = value.type_name();
        value
            .try_cast::<T>()
            .unwrap_or_else(|| panic!("{script}: unexpected {type_name}"))
    }

    fn blob(script: &str) -> Blob {
        eval(script)
    }

    fn array(script: &str) -> Array {
        eval(script)
    }

    fn ints(values: &[Dynamic]) -> Vec<INT> {
        values
            .iter()
            .map(|v| v.as_int().expect("an integer"))
            .collect()
    }

    /// `(script, words)`: the script raises `invalid_argument` with all the words in its message.
    macro_rules! error_cases {
        ($($script:expr => [$($word:expr),+ $(,)?]),+ $(,)?) => {
            $(
                let err = match engine().eval::<Dynamic>($script) {
                    Ok(v) => panic!("{}: expected an error, got {v:?}", $script),
                    Err(err) => err,
                };
                let map = catchable_map(&err);
                let kind = map.get("kind").map(|k| k.to_string()).unwrap_or_default();
                let message = map.get("message").map(|m| m.to_string()).unwrap_or_default();
                assert_eq!(kind, ErrorKind::InvalidArgument.as_str(), "{}: {message}", $script);
                for word in [$($word),+] {
                    assert!(message.contains(word), "{}: `{word}` not in {message:?}", $script);
                }
            )+
        };
    }

    #[test]
    fn hex_accepts_the_usual_spellings() {
        let dead = vec![0xde, 0xad, 0xbe, 0xef];
        for text in [
            "deadbeef",
            "de ad be ef",
            "DE:AD:BE:EF",
            "de-ad-be-ef",
            "0xdeadbeef",
            "0xde 0xad 0xbe 0xef",
            "0XDE 0Xad BEEF",
            "  de\tad\nbe ef  ",
        ] {
            assert_eq!(blob(&format!("hex({text:?})")), dead, "{text:?}");
        }
        assert_eq!(blob(r#"hex("")"#), Blob::new());
        assert_eq!(blob(r#"hex("00 ff 0a")"#), vec![0, 255, 10]);
    }

    #[test]
    fn to_hex_with_and_without_separator() {
        assert_eq!(eval::<String>(r#"hex("DE AD 01").to_hex()"#), "dead01");
        assert_eq!(eval::<String>(r#"to_hex(hex("dead01"), " ")"#), "de ad 01");
        assert_eq!(eval::<String>(r#"hex("dead01").to_hex(":")"#), "de:ad:01");
        assert_eq!(eval::<String>(r#"to_hex(hex(""), " ")"#), "");
        // rhai's own to_hex for integers still works.
        assert_eq!(eval::<String>("to_hex(255)"), "ff");
    }

    #[test]
    fn hexdump_reuses_the_transcript_format() {
        let dump = eval::<String>(r#"hexdump(hex("48656c6c6f0a"))"#);
        assert_eq!(dump, crate::transcript::hexdump(b"Hello\n"));
    }

    #[test]
    fn pack_matches_hex() {
        let same = eval::<bool>;
        assert!(same(r#"pack(">HI", [1, 2]) == hex("0001 00000002")"#));
        assert!(same(r#"pack("HI", [1, 2]) == hex("0001 00000002")"#));
        assert!(same(r#"pack("!HI", [1, 2]) == hex("0001 00000002")"#));
        assert!(same(r#"pack("<HI", [1, 2]) == hex("0100 02000000")"#));
        assert!(same(
            r#"pack(">bBhH", [-1, 255, -2, 65535]) == hex("ff ff fffe ffff")"#
        ));
        assert!(same(
            r#"pack("<iIqQ", [-2, 4294967295, -3, 9223372036854775807]) == hex("feffffff ffffffff fdffffffffffffff ffffffffffffff7f")"#
        ));
        assert!(same(r#"pack(">?x?", [true, false]) == hex("01 00 00")"#));
        assert!(same(
            r#"pack(" > 3H 2x B ", [1, 2, 3, 4]) == hex("0001 0002 0003 0000 04")"#
        ));
        assert!(same(
            r#"pack(">fd", [1.5, 2]) == hex("3fc00000 4000000000000000")"#
        ));
        assert!(same(r#"pack("<f", [-0.5]) == hex("000000bf")"#));
        assert!(same(
            r#"pack("4s2s", ["ab", hex("0102")]) == hex("61620000 0102")"#
        ));
        assert!(same(r#"pack("0s", [""]) == hex("")"#));
        assert!(same(r#"pack("", []) == hex("")"#));
    }

    #[test]
    fn unpack_reads_what_pack_wrote() {
        assert_eq!(
            ints(&array(r#"unpack("<Q", hex("0807060504030201"))"#)),
            [0x0102_0304_0506_0708]
        );
        assert_eq!(
            ints(&array(r#"unpack(">HI", hex("0001 00000002"))"#)),
            [1, 2]
        );
        assert_eq!(
            ints(&array(
                r#"unpack("<bhiq", hex("ff feff fdffffff fcffffffffffffff"))"#
            )),
            [-1, -2, -3, -4]
        );
        assert_eq!(
            ints(&array(r#"unpack(">BHI", hex("ff ffff ffffffff"))"#)),
            [255, 65535, 4_294_967_295]
        );
        assert_eq!(
            ints(&array(r#"unpack("3B x B", hex("01 02 03 ff 04"))"#)),
            [1, 2, 3, 4]
        );

        let mixed = array(r#"unpack(">?fd3s", hex("02 3fc00000 4004000000000000 616263"))"#);
        assert_eq!(mixed[0].as_bool(), Ok(true));
        assert_eq!(mixed[1].as_float(), Ok(1.5));
        assert_eq!(mixed[2].as_float(), Ok(2.5));
        assert_eq!(mixed[3].clone().try_cast::<Blob>(), Some(b"abc".to_vec()));

        let round =
            array(r#"let v = [-5, 300, 70000, true, "hi"]; unpack("<hHI?4s", pack("<hHI?4s", v))"#);
        assert_eq!(ints(&round[..3]), [-5, 300, 70000]);
        assert_eq!(
            round[4].clone().try_cast::<Blob>(),
            Some(b"hi\0\0".to_vec())
        );
    }

    #[test]
    fn unpack_from_reads_at_an_offset() {
        assert_eq!(
            ints(&array(r#"unpack_from(">H", hex("ff 0102 ee ee"), 1)"#)),
            [0x0102]
        );
        assert_eq!(ints(&array(r#"unpack_from("B", hex("07"), 0)"#)), [7]);
        assert_eq!(eval::<INT>(r#"calcsize(">HI 4s x")"#), 11);
        assert_eq!(eval::<INT>(r#"calcsize("")"#), 0);
        assert_eq!(eval::<INT>(r#"calcsize("<3q ?")"#), 25);
    }

    #[test]
    fn length_prefixed_frames() {
        let frame = blob(
            r#"
            let body = "hello";
            let by_concat = pack(">H", [body.len()]) + body.to_blob();
            let by_format = pack(`>H${body.len()}s`, [body.len(), body]);
            if by_concat != by_format { throw "differ"; }
            by_format
            "#,
        );
        assert_eq!(frame, b"\x00\x05hello".to_vec());
        let body = eval::<String>(
            r#"
            let frame = hex("0005 68656c6c6f 0000");
            let len = unpack_from(">H", frame, 0)[0];
            unpack_from(`${len}s`, frame, 2)[0].as_string()
            "#,
        );
        assert_eq!(body, "hello");
    }

    #[test]
    fn errors_say_what_was_wrong() {
        error_cases! {
            r#"hex("abc")"# => ["odd", "position 0"],
            r#"hex("de ad b ef")"# => ["`b`", "odd", "position 6"],
            r#"hex("de ag")"# => ["`g`", "position 4", "not a hex digit"],
            r#"hex("0x")"# => ["`0x`", "position 0", "no digits"],
            r#"pack(">B", [300])"# => ["index 0", "300", "out of range", "0 to 255"],
            r#"pack(">BH", [1, -1])"# => ["index 1", "-1", "0 to 65535"],
            r#"pack("b", [128])"# => ["index 0", "-128 to 127"],
            r#"pack("Q", [-1])"# => ["index 0", "0 to 9223372036854775807"],
            r#"pack("f", [1e300])"# => ["index 0", "out of range", "`f`"],
            r#"pack(">HI", [1])"# => ["expects 2 values", "got 1"],
            r#"pack(">H", [1, 2])"# => ["expects 1 values", "got 2"],
            r#"pack("H", ["1"])"# => ["index 0", "integer", "string"],
            r#"pack("?", [1])"# => ["index 0", "bool"],
            r#"pack("2s", ["abc"])"# => ["index 0", "3 bytes", "longer", "`2s`"],
            r#"pack("s", [42])"# => ["blob or a string"],
            r#"pack(">Hz", [1])"# => ["unknown format code `z`", "position 2"],
            r#"pack("H<", [1])"# => ["byte order `<`", "first"],
            r#"pack("3", [])"# => ["count at position 0", "not followed"],
            r#"pack("3 H", [1, 2, 3])"# => ["count at position 0", "not followed"],
            r#"calcsize("99999999999999999999999H")"# => ["too large"],
            r#"unpack(">HI", hex("0001 000000"))"# => ["needs 6 bytes", "got 5"],
            r#"unpack(">H", hex("000100"))"# => ["needs 2 bytes", "got 3"],
            r#"unpack(">Q", hex("ffffffffffffffff"))"# => ["`Q`", "index 0", "18446744073709551615", "largest"],
            r#"unpack_from(">I", hex("0001 0203 04"), 2)"# => ["needs 4 bytes", "offset 2", "only 3", "5"],
            r#"unpack_from(">B", hex("00"), 5)"# => ["offset 5", "only 0"],
            r#"unpack_from(">B", hex("00"), -1)"# => ["negative"],
        }
    }
}
