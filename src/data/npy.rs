//! The `.npy` array format (versions 1.0, 2.0 and 3.0): parse a whole file into its dtype,
//! shape and raw bytes, convert to `u8` / `f32`, and write numpy's own header layout.
//!
//! Only what episode files need is accepted: little- or big-endian booleans, integers and
//! floats of 1 to 8 bytes, C order (Fortran order only where it is the same thing). Structured
//! dtypes, objects, strings and dates are rejected with a message naming the dtype. Nothing is
//! allocated from a declared size: shapes are checked against the bytes actually present.

use super::shape_str;

/// Element type of an `.npy` array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Bool,
    Uint,
    Int,
    Float,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Dtype {
    kind: Kind,
    size: usize,
    big_endian: bool,
}

pub(crate) struct NpyArray {
    pub(crate) descr: String,
    pub(crate) dtype: Dtype,
    pub(crate) shape: Vec<usize>,
    pub(crate) data: Vec<u8>,
}

impl NpyArray {
    pub(crate) fn into_u8(self, key: &str) -> std::result::Result<Vec<u8>, String> {
        match (self.dtype.kind, self.dtype.size) {
            (Kind::Uint, 1) => Ok(self.data),
            _ => Err(format!(
                "{key} has dtype '{}', expected uint8 ('|u1')",
                self.descr
            )),
        }
    }

    /// Converts to `f32`. Floats of 2, 4 or 8 bytes are accepted; `bool` and integers only when
    /// `allow_discrete` (for discount / is_terminal flags).
    pub(crate) fn into_f32(
        self,
        key: &str,
        allow_discrete: bool,
    ) -> std::result::Result<Vec<f32>, String> {
        let Dtype {
            kind,
            size,
            big_endian,
        } = self.dtype;
        let chunks = self.data.chunks_exact(size.max(1));
        fn arr<const N: usize>(c: &[u8], be: bool) -> [u8; N] {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            if be {
                a.reverse();
            }
            a
        }
        let out: Vec<f32> = match (kind, size) {
            (Kind::Float, 2) => chunks
                .map(|c| half::f16::from_le_bytes(arr::<2>(c, big_endian)).to_f32())
                .collect(),
            (Kind::Float, 4) => chunks
                .map(|c| f32::from_le_bytes(arr::<4>(c, big_endian)))
                .collect(),
            (Kind::Float, 8) => chunks
                .map(|c| f64::from_le_bytes(arr::<8>(c, big_endian)) as f32)
                .collect(),
            (Kind::Bool, 1) if allow_discrete => {
                chunks.map(|c| if c[0] != 0 { 1.0 } else { 0.0 }).collect()
            }
            (Kind::Uint, 1 | 2 | 4 | 8) if allow_discrete => chunks
                .map(|c| {
                    let mut a = [0u8; 8];
                    a[..size].copy_from_slice(c);
                    if big_endian {
                        a[..size].reverse();
                    }
                    u64::from_le_bytes(a) as f32
                })
                .collect(),
            (Kind::Int, 1 | 2 | 4 | 8) if allow_discrete => chunks
                .map(|c| {
                    let mut a = [0u8; 8];
                    a[..size].copy_from_slice(c);
                    if big_endian {
                        a[..size].reverse();
                    }
                    // Sign-extend from `size` bytes.
                    let shift = 64 - 8 * size as u32;
                    ((i64::from_le_bytes(a) << shift) >> shift) as f32
                })
                .collect(),
            _ => {
                let allowed = if allow_discrete {
                    "float16/32/64, bool or integer"
                } else {
                    "float16, float32 or float64"
                };
                return Err(format!(
                    "{key} has dtype '{}', expected {allowed}",
                    self.descr
                ));
            }
        };
        Ok(out)
    }
}

/// Parses a whole `.npy` file (versions 1.0, 2.0 and 3.0).
pub(crate) fn parse_npy(buf: &[u8]) -> std::result::Result<NpyArray, String> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if buf.len() < 10 || &buf[..6] != MAGIC {
        return Err("not an .npy array (bad magic bytes or too short)".into());
    }
    let (major, minor) = (buf[6], buf[7]);
    let (header_len, header_start) = match major {
        1 => (u16::from_le_bytes([buf[8], buf[9]]) as usize, 10usize),
        2 | 3 => {
            if buf.len() < 12 {
                return Err("truncated .npy header".into());
            }
            (
                u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize,
                12,
            )
        }
        _ => return Err(format!("unsupported .npy format version {major}.{minor}")),
    };
    let header_end = header_start
        .checked_add(header_len)
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| {
            format!(
                "truncated .npy header (declares {header_len} bytes, only {} present)",
                buf.len().saturating_sub(header_start)
            )
        })?;
    let header = std::str::from_utf8(&buf[header_start..header_end])
        .map_err(|_| "the .npy header is not valid text".to_string())?;
    let dict = match PyParser::new(header).parse_value()? {
        PyValue::Dict(d) => d,
        _ => return Err(format!("the .npy header is not a dict: {}", header.trim())),
    };
    let get = |k: &str| dict.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    let descr = match get("descr") {
        Some(PyValue::Str(s)) => s.clone(),
        Some(PyValue::List) => {
            return Err("structured (record) dtypes are not supported".into());
        }
        _ => return Err("the .npy header has no 'descr' string".into()),
    };
    let fortran = match get("fortran_order") {
        Some(PyValue::Bool(b)) => *b,
        _ => return Err("the .npy header has no 'fortran_order' flag".into()),
    };
    let shape = match get("shape") {
        Some(PyValue::Tuple(items)) => items
            .iter()
            .map(|v| match v {
                PyValue::Int(n) => Ok(*n),
                _ => Err("the .npy 'shape' must be a tuple of integers".to_string()),
            })
            .collect::<std::result::Result<Vec<usize>, String>>()?,
        _ => return Err("the .npy header has no 'shape' tuple".into()),
    };
    if fortran && shape.iter().filter(|&&d| d != 1).count() > 1 {
        return Err(format!(
            "Fortran-order (column-major) array of shape {} is not supported; \
             save it with np.ascontiguousarray(...) first",
            shape_str(&shape)
        ));
    }
    let dtype = parse_descr(&descr)?;
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("shape {} overflows", shape_str(&shape)))?;
    let expected = count
        .checked_mul(dtype.size)
        .ok_or_else(|| format!("shape {} overflows", shape_str(&shape)))?;
    let data = &buf[header_end..];
    if data.len() != expected {
        let what = if data.len() < expected {
            "truncated data"
        } else {
            "unexpected trailing data"
        };
        return Err(format!(
            "{what}: shape {} of '{descr}' needs {expected} bytes, found {}",
            shape_str(&shape),
            data.len()
        ));
    }
    Ok(NpyArray {
        descr,
        dtype,
        shape,
        data: data.to_vec(),
    })
}

fn parse_descr(descr: &str) -> std::result::Result<Dtype, String> {
    let mut chars = descr.chars();
    let (big_endian, rest) = match chars.next() {
        Some('<') | Some('|') | Some('=') => (false, chars.as_str()),
        Some('>') => (true, chars.as_str()),
        _ => (false, descr),
    };
    let mut rest_chars = rest.chars();
    let kind = match rest_chars.next() {
        Some('b') => Kind::Bool,
        Some('u') => Kind::Uint,
        Some('i') => Kind::Int,
        Some('f') => Kind::Float,
        _ => return Err(format!("unsupported dtype '{descr}'")),
    };
    let size: usize = rest_chars
        .as_str()
        .parse()
        .map_err(|_| format!("unsupported dtype '{descr}'"))?;
    if size == 0 || size > 8 || (kind == Kind::Bool && size != 1) {
        return Err(format!("unsupported dtype '{descr}'"));
    }
    Ok(Dtype {
        kind,
        size,
        big_endian: big_endian && size > 1,
    })
}

/// The subset of Python literals that `.npy` headers use.
#[derive(Debug)]
enum PyValue {
    Str(String),
    Bool(bool),
    Int(usize),
    None,
    Tuple(Vec<PyValue>),
    /// A list; only structured dtypes use one, and they are rejected, so items are dropped.
    List,
    Dict(Vec<(String, PyValue)>),
}

struct PyParser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl<'a> PyParser<'a> {
    fn new(s: &'a str) -> Self {
        PyParser {
            s: s.as_bytes(),
            i: 0,
            depth: 0,
        }
    }

    fn err<T>(&self, what: &str) -> std::result::Result<T, String> {
        Err(format!(
            "malformed .npy header ({what} at byte {}): {}",
            self.i,
            String::from_utf8_lossy(self.s).trim()
        ))
    }

    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }

    fn parse_value(&mut self) -> std::result::Result<PyValue, String> {
        self.depth += 1;
        if self.depth > 16 {
            return self.err("nesting too deep");
        }
        let v = match self.peek() {
            Some(b'{') => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                        break;
                    }
                    let key = match self.parse_value()? {
                        PyValue::Str(k) => k,
                        _ => return self.err("dict key is not a string"),
                    };
                    if self.peek() != Some(b':') {
                        return self.err("expected ':'");
                    }
                    self.i += 1;
                    let value = self.parse_value()?;
                    items.push((key, value));
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {}
                        _ => return self.err("expected ',' or '}'"),
                    }
                }
                PyValue::Dict(items)
            }
            Some(open @ (b'(' | b'[')) => {
                self.i += 1;
                let close = if open == b'(' { b')' } else { b']' };
                let mut items = Vec::new();
                loop {
                    if self.peek() == Some(close) {
                        self.i += 1;
                        break;
                    }
                    items.push(self.parse_value()?);
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(c) if c == close => {}
                        _ => return self.err("expected ',' or a closing bracket"),
                    }
                }
                if open == b'(' {
                    PyValue::Tuple(items)
                } else {
                    PyValue::List
                }
            }
            Some(q @ (b'\'' | b'"')) => {
                self.i += 1;
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i] != q {
                    if self.s[self.i] == b'\\' {
                        return self.err("escapes in strings are not supported");
                    }
                    self.i += 1;
                }
                if self.i >= self.s.len() {
                    return self.err("unterminated string");
                }
                let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                PyValue::Str(text)
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                    self.i += 1;
                }
                let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                let n: usize = match digits.parse() {
                    Ok(n) => n,
                    Err(_) => return self.err("integer too large"),
                };
                // Python 2 long suffix, as in very old files: `(3L, 2L)`.
                if self.s.get(self.i) == Some(&b'L') {
                    self.i += 1;
                }
                PyValue::Int(n)
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i].is_ascii_alphanumeric() {
                    self.i += 1;
                }
                match &self.s[start..self.i] {
                    b"True" => PyValue::Bool(true),
                    b"False" => PyValue::Bool(false),
                    b"None" => PyValue::None,
                    _ => return self.err("unknown name"),
                }
            }
            Some(_) => return self.err("unexpected character"),
            None => return self.err("unexpected end"),
        };
        self.depth -= 1;
        Ok(v)
    }
}

/// Builds an `.npy` (version 1.0) header exactly as numpy's `np.save` lays it out: the dict
/// literal, padded with spaces and a final newline so the data starts on a 64-byte boundary.
pub(crate) fn npy_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let shape_repr = match shape {
        [n] => format!("({n},)"),
        dims => {
            let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
            format!("({})", parts.join(", "))
        }
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_repr}, }}");
    // numpy: hlen = len(header) + 1 (newline); pad so that 8 + 2 + hlen + pad is a multiple of 64.
    let hlen = dict.len() + 1;
    let pad = 64 - ((8 + 2 + hlen) % 64);
    let mut out = Vec::with_capacity(10 + hlen + pad);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    // A 64-byte-aligned header of a 4-d shape is far below u16::MAX.
    out.extend_from_slice(&((hlen + pad) as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_matches_numpy_layout() {
        let h = npy_header("<f4", &[3, 2]);
        assert_eq!(h.len() % 64, 0);
        let text = std::str::from_utf8(&h[10..]).unwrap();
        assert!(text.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }"));
        assert!(text.ends_with(" \n"));
        let h1 = npy_header("<f4", &[7]);
        assert!(std::str::from_utf8(&h1[10..])
            .unwrap()
            .contains("'shape': (7,), }"));
    }

    #[test]
    fn parses_header_variants() {
        for (header, shape) in [
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }",
                vec![3, 2],
            ),
            (
                "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (3L, 2L)}",
                vec![3, 2],
            ),
            (
                "{'shape': (6,), 'fortran_order': False, 'descr': '<f4'}",
                vec![6],
            ),
        ] {
            let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
            bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
            bytes.extend_from_slice(header.as_bytes());
            bytes.extend_from_slice(&[0u8; 24]);
            let arr = parse_npy(&bytes).unwrap_or_else(|e| panic!("{header}: {e}"));
            assert_eq!(arr.shape, shape);
        }
    }

    #[test]
    fn reads_scalar_shape_and_conversions() {
        let mut bytes = npy_header(">f8", &[2]);
        bytes.extend_from_slice(&1.5f64.to_be_bytes());
        bytes.extend_from_slice(&(-2.0f64).to_be_bytes());
        let arr = parse_npy(&bytes).unwrap();
        assert_eq!(arr.into_f32("x", false).unwrap(), vec![1.5, -2.0]);
        let mut bytes = npy_header("<i2", &[2]);
        bytes.extend_from_slice(&(-3i16).to_le_bytes());
        bytes.extend_from_slice(&7i16.to_le_bytes());
        let arr = parse_npy(&bytes).unwrap();
        assert!(parse_npy(&bytes).unwrap().into_f32("x", false).is_err());
        assert_eq!(arr.into_f32("x", true).unwrap(), vec![-3.0, 7.0]);
    }
}
