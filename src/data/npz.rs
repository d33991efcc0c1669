//! Episodes in Dreamer's `.npz` format.
//!
//! An `.npz` file is a zip archive of `.npy` arrays, as written by `np.savez` (entries stored)
//! or `np.savez_compressed` (entries deflated). An episode file holds:
//!
//! | key | dtype | shape |
//! | --- | --- | --- |
//! | `image` | `uint8` | `[T, 64, 64, 3]` |
//! | `action` | `float32` | `[T, A]` |
//! | `reward` | `float32` | `[T]` |
//! | `discount` | `float32` | `[T]` |
//!
//! Loading is lenient where other tools differ harmlessly and strict where a silent
//! misreading would poison training:
//! - `action`, `reward`, `discount` may be `float16`, `float32` or `float64` (converted to
//!   `f32`); `discount` may also be `bool`. `reward` and `discount` may be `[T]` or `[T, 1]`;
//!   `action` may be `[T]` (read as `A = 1`).
//! - If `discount` is absent but `is_terminal` (DreamerV2/V3 files) is present, the discount is
//!   `1 - is_terminal`. Other extra arrays are ignored.
//! - Little- and big-endian data are both read; Fortran-order (column-major) arrays with more
//!   than one dimension are rejected, as are structured dtypes.
//! - Every problem (not a zip, truncated, missing key, wrong dtype, shapes that disagree, wrong
//!   image size, NaN or infinite values) is reported with the file's name.
//!
//! Saving writes `.npy` version 1.0 entries exactly as numpy does (64-byte aligned headers),
//! atomically (temporary file + rename).

use std::fs;
use std::io::{Cursor, Read, Seek, Write};
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::atomic::write_atomically;
use super::episode::{Episode, FRAME_LEN, IMAGE_CHANNELS, IMAGE_SIZE};
use super::{DataError, Result};

/// How `.npy` entries are stored inside a written `.npz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NpzCompression {
    /// Uncompressed, like `np.savez`. Fastest to write and read.
    Stored,
    /// Deflate, like `np.savez_compressed` (what DreamerV1 writes). Rendered frames compress
    /// several-fold.
    #[default]
    Deflated,
}

/// Largest decompressed `.npy` entry accepted (guards against zip bombs): 8 GiB.
const MAX_ENTRY_BYTES: u64 = 8 << 30;

/// Loads one episode from a Dreamer `.npz` file. See the module docs for what is accepted.
pub fn load_npz(path: impl AsRef<Path>) -> Result<Episode> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|e| DataError::io(path, "read", e))?;
    episode_from_npz_bytes(&bytes).map_err(|reason| match reason {
        LoadError::Msg(m) => DataError::bad_file(path, m),
        LoadError::Data(e) => e.in_file(path),
    })
}

/// Saves `episode` to `path` with deflated entries (like `np.savez_compressed`). The file is
/// replaced atomically: readers see the old file or the complete new one.
pub fn save_npz(path: impl AsRef<Path>, episode: &Episode) -> Result<()> {
    save_npz_with(path, episode, NpzCompression::Deflated)
}

/// Saves `episode` to `path` with the given entry compression, atomically.
pub fn save_npz_with(
    path: impl AsRef<Path>,
    episode: &Episode,
    compression: NpzCompression,
) -> Result<()> {
    let path = path.as_ref();
    write_atomically(path, |file| {
        write_npz(file, episode, compression).map_err(|e| DataError::bad_file(path, e))
    })
}

/// A file that [`load_dir`] skipped, with the reason.
pub type FailedFile = (PathBuf, DataError);

/// Loads every `*.npz` file directly inside `dir`, in file-name order.
///
/// Returns the episodes that loaded and, separately, each file that did not with its error, so
/// one bad file does not stop a run (the caller decides whether to warn or abort). Fails as a
/// whole only if the folder itself cannot be listed.
pub fn load_dir(dir: impl AsRef<Path>) -> Result<(Vec<Episode>, Vec<FailedFile>)> {
    let dir = dir.as_ref();
    let entries = fs::read_dir(dir).map_err(|e| DataError::io(dir, "list folder", e))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, "list folder", e))?;
        let path = entry.path();
        let is_npz = path.extension().is_some_and(|e| e == "npz");
        if is_npz && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    let mut episodes = Vec::with_capacity(paths.len());
    let mut failed = Vec::new();
    for path in paths {
        match load_npz(&path) {
            Ok(ep) => episodes.push(ep),
            Err(e) => failed.push((path, e)),
        }
    }
    Ok((episodes, failed))
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// A failure while decoding: a message (the file name is added by the caller) or an episode
/// validation error.
enum LoadError {
    Msg(String),
    Data(DataError),
}

impl From<String> for LoadError {
    fn from(m: String) -> Self {
        LoadError::Msg(m)
    }
}

fn episode_from_npz_bytes(bytes: &[u8]) -> std::result::Result<Episode, LoadError> {
    let mut zip = ZipArchive::new(Cursor::new(bytes)).map_err(|e| {
        format!(
            "not a readable .npz (zip) archive ({} bytes): {e}; the file may be truncated or not an npz",
            bytes.len()
        )
    })?;
    let names: Vec<String> = zip.file_names().map(str::to_owned).collect();
    let find = |key: &str| -> Option<String> {
        let with_ext = format!("{key}.npy");
        names
            .iter()
            .find(|n| **n == with_ext)
            .or_else(|| names.iter().find(|n| *n == key))
            .cloned()
    };
    let has_discount = find("discount").is_some();
    let discount_key = if has_discount || find("is_terminal").is_none() {
        "discount"
    } else {
        "is_terminal"
    };
    let required = ["image", "action", "reward", discount_key];
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|k| find(k).is_none())
        .collect();
    if !missing.is_empty() {
        let mut present: Vec<&str> = names
            .iter()
            .map(|n| n.strip_suffix(".npy").unwrap_or(n))
            .collect();
        present.sort_unstable();
        return Err(format!(
            "missing array(s) {} (the file has: {})",
            missing.join(", "),
            if present.is_empty() {
                "nothing".to_string()
            } else {
                present.join(", ")
            }
        )
        .into());
    }
    let mut read = |key: &str| -> std::result::Result<NpyArray, String> {
        let name = find(key).unwrap_or_default();
        let entry = zip
            .by_name(&name)
            .map_err(|e| format!("cannot open array '{key}': {e}"))?;
        let declared = entry.size();
        if declared > MAX_ENTRY_BYTES {
            return Err(format!(
                "array '{key}' is {declared} bytes uncompressed, more than the {MAX_ENTRY_BYTES} accepted"
            ));
        }
        // The declared size is only a hint (it may lie); cap the up-front allocation.
        let mut buf = Vec::with_capacity(declared.min(1 << 26) as usize);
        entry
            .take(MAX_ENTRY_BYTES + 1)
            .read_to_end(&mut buf)
            .map_err(|e| format!("cannot read array '{key}' (corrupt or truncated entry): {e}"))?;
        if buf.len() as u64 > MAX_ENTRY_BYTES {
            return Err(format!(
                "array '{key}' decompresses to more than the {MAX_ENTRY_BYTES} bytes accepted"
            ));
        }
        parse_npy(&buf).map_err(|e| format!("array '{key}': {e}"))
    };
    let image = read("image")?;
    let action = read("action")?;
    let reward = read("reward")?;
    let discount = read(discount_key)?;

    // Shapes.
    let t = image.shape.first().copied().unwrap_or(0);
    if image.shape.len() != 4 || image.shape[1..] != [IMAGE_SIZE, IMAGE_SIZE, IMAGE_CHANNELS] {
        let hint = if image.shape.len() == 4 && image.shape[1] == IMAGE_CHANNELS {
            " (channels-first? frames must be HWC: height, width, channels)"
        } else {
            ""
        };
        return Err(format!(
            "image has shape {}, expected [T, {IMAGE_SIZE}, {IMAGE_SIZE}, {IMAGE_CHANNELS}]{hint}",
            shape_str(&image.shape)
        )
        .into());
    }
    let action_dim = match action.shape.as_slice() {
        [_] => 1,
        [_, a] => *a,
        other => {
            return Err(format!("action has shape {}, expected [T, A]", shape_str(other)).into())
        }
    };
    let vector_len = |arr: &NpyArray, key: &str| -> std::result::Result<usize, String> {
        match arr.shape.as_slice() {
            [n] | [n, 1] => Ok(*n),
            other => Err(format!(
                "{key} has shape {}, expected [T]",
                shape_str(other)
            )),
        }
    };
    let t_reward = vector_len(&reward, "reward")?;
    let t_discount = vector_len(&discount, discount_key)?;
    let t_action = action.shape[0];
    if t_action != t || t_reward != t || t_discount != t {
        return Err(format!(
            "arrays disagree on the number of steps: image {t}, action {t_action}, reward {t_reward}, {discount_key} {t_discount}"
        )
        .into());
    }
    if t == 0 {
        return Err("episode has no steps (T = 0)".to_string().into());
    }

    // Dtypes and values.
    let image_bytes = image.into_u8("image")?;
    debug_assert_eq!(image_bytes.len(), t * FRAME_LEN);
    let action = action.into_f32("action", false)?;
    let reward = reward.into_f32("reward", false)?;
    let mut discount = discount.into_f32(discount_key, true)?;
    if discount_key == "is_terminal" {
        for d in &mut discount {
            *d = 1.0 - *d;
        }
    }
    Episode::new(image_bytes, action, reward, discount, action_dim).map_err(LoadError::Data)
}

/// Element type of an `.npy` array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bool,
    Uint,
    Int,
    Float,
}

#[derive(Clone, Copy, Debug)]
struct Dtype {
    kind: Kind,
    size: usize,
    big_endian: bool,
}

struct NpyArray {
    descr: String,
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl NpyArray {
    fn into_u8(self, key: &str) -> std::result::Result<Vec<u8>, String> {
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
    fn into_f32(self, key: &str, allow_discrete: bool) -> std::result::Result<Vec<f32>, String> {
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

fn shape_str(shape: &[usize]) -> String {
    super::shape_str(shape)
}

/// Parses a whole `.npy` file (versions 1.0, 2.0 and 3.0).
fn parse_npy(buf: &[u8]) -> std::result::Result<NpyArray, String> {
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

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

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

fn write_npz<W: Write + Seek>(
    w: W,
    ep: &Episode,
    compression: NpzCompression,
) -> std::result::Result<(), String> {
    let method = match compression {
        NpzCompression::Stored => CompressionMethod::Stored,
        NpzCompression::Deflated => CompressionMethod::Deflated,
    };
    let t = ep.len();
    let a = ep.action_dim();
    let mut zip = ZipWriter::new(w);
    let mut entry = |name: &str, header: Vec<u8>, data: &[u8]| -> std::result::Result<(), String> {
        let size = (header.len() + data.len()) as u64;
        let options = SimpleFileOptions::default()
            .compression_method(method)
            .large_file(size >= u32::MAX as u64);
        zip.start_file(format!("{name}.npy"), options)
            .map_err(|e| format!("cannot write array '{name}': {e}"))?;
        zip.write_all(&header)
            .and_then(|_| zip.write_all(data))
            .map_err(|e| format!("cannot write array '{name}': {e}"))
    };
    let f32_bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    entry(
        "image",
        npy_header("|u1", &[t, IMAGE_SIZE, IMAGE_SIZE, IMAGE_CHANNELS]),
        ep.image(),
    )?;
    entry(
        "action",
        npy_header("<f4", &[t, a]),
        &f32_bytes(ep.action()),
    )?;
    entry("reward", npy_header("<f4", &[t]), &f32_bytes(ep.reward()))?;
    entry(
        "discount",
        npy_header("<f4", &[t]),
        &f32_bytes(ep.discount()),
    )?;
    zip.finish()
        .map_err(|e| format!("cannot finish the zip archive: {e}"))?;
    Ok(())
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
