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
use super::npy::{npy_header, parse_npy, NpyArray};
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
    let archive_len = bytes.len();
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
        // The declared size is only a hint (it may lie): reserve no more than a few times the
        // whole file; the buffer grows if the entry really inflates further.
        let plausible = (archive_len as u64).saturating_mul(4);
        let mut buf = Vec::with_capacity(declared.min(plausible).min(1 << 26) as usize);
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

fn shape_str(shape: &[usize]) -> String {
    super::shape_str(shape)
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

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
