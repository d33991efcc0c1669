//! Host-side named tensors in `.safetensors` files (checkpoints of parameters and optimiser
//! state).
//!
//! Tensors are held as [`HostTensor`] (`f32`, row-major). Files are written as `F32`. Loading
//! also accepts `F64`, `F16` and `BF16` tensors (as written by other tools) and converts them to
//! `f32`; any other dtype is rejected naming the key and dtype. `F64` values beyond the `f32`
//! range are rejected rather than silently becoming infinite.
//!
//! Writing is atomic (temporary file, `fsync`, rename): an interrupted save never leaves a
//! truncated checkpoint behind, which matters when training resumes from the latest one.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::{SafeTensorError, SafeTensors};

use super::atomic::write_atomically;
use super::{shape_str, DataError, Result};

/// A dense `f32` tensor on the host, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// Dimensions, outermost first. An empty shape is a scalar (one value).
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values, row-major.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// A tensor with the given shape and data; errors if the data does not fill the shape.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let t = HostTensor { shape, data };
        t.validate("tensor")?;
        Ok(t)
    }

    /// A tensor of zeros.
    pub fn zeros(shape: Vec<usize>) -> Self {
        let n = shape.iter().product();
        HostTensor {
            shape,
            data: vec![0.0; n],
        }
    }

    /// Number of elements the shape describes.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    fn validate(&self, name: &str) -> Result<()> {
        let n = self
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if n != Some(self.data.len()) {
            return Err(DataError::invalid(
                format!("tensor '{name}'"),
                format!(
                    "shape {} needs {} values but data has {}",
                    shape_str(&self.shape),
                    n.map_or_else(|| "overflowing".to_string(), |n| n.to_string()),
                    self.data.len()
                ),
            ));
        }
        Ok(())
    }
}

/// Writes `tensors` (and optional string `metadata`) to `path` as an `F32` safetensors file,
/// atomically: temporary file in the same folder, `fsync`, rename.
///
/// Errors (before touching `path`) if any tensor's data does not fill its shape.
pub fn save_safetensors(
    path: impl AsRef<Path>,
    tensors: &BTreeMap<String, HostTensor>,
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let path = path.as_ref();
    for (name, t) in tensors {
        t.validate(name)?;
    }
    let bytes: Vec<(&str, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            (
                name.as_str(),
                t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views = bytes
        .iter()
        .zip(tensors.values())
        .map(|((name, b), t)| {
            TensorView::new(Dtype::F32, t.shape.clone(), b)
                .map(|v| (*name, v))
                .map_err(|e| DataError::invalid(format!("tensor '{name}'"), e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let serialized = safetensors::serialize(views, metadata)
        .map_err(|e| DataError::bad_file(path, format!("cannot serialize safetensors: {e}")))?;
    let serialized = with_sorted_header(serialized)
        .map_err(|e| DataError::bad_file(path, format!("cannot serialize safetensors: {e}")))?;
    write_atomically(path, |w| {
        w.write_all(&serialized)
            .map_err(|e| DataError::io(path, "write", e))
    })
}

/// The serialized file with its JSON header's keys (and the metadata's) in sorted order: the
/// metadata come as a `HashMap`, whose order changes from one process to the next, and the
/// same checkpoint must be the same bytes (a resumed run's is compared bit for bit with an
/// uninterrupted run's). The data section is untouched (its offsets are relative to it).
fn with_sorted_header(serialized: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    let len_bytes: [u8; 8] = serialized
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or("no header length")?;
    let n = usize::try_from(u64::from_le_bytes(len_bytes)).map_err(|e| e.to_string())?;
    let header = serialized.get(8..8 + n).ok_or("header past the end")?;
    let value: serde_json::Value = serde_json::from_slice(header).map_err(|e| e.to_string())?;
    let top: BTreeMap<&String, &serde_json::Value> = value
        .as_object()
        .ok_or("the header is not an object")?
        .iter()
        .collect();
    let mut out = String::from("{");
    for (i, (key, v)) in top.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let v = match (key.as_str(), v.as_object()) {
            ("__metadata__", Some(meta)) => {
                serde_json::to_string(&meta.iter().collect::<BTreeMap<_, _>>())
            }
            _ => serde_json::to_string(v),
        };
        out.push_str(&serde_json::to_string(key).map_err(|e| e.to_string())?);
        out.push(':');
        out.push_str(&v.map_err(|e| e.to_string())?);
    }
    out.push('}');
    while out.len() % 8 != 0 {
        out.push(' ');
    }
    let mut bytes = Vec::with_capacity(8 + out.len() + serialized.len() - 8 - n);
    bytes.extend_from_slice(&(out.len() as u64).to_le_bytes());
    bytes.extend_from_slice(out.as_bytes());
    bytes.extend_from_slice(&serialized[8 + n..]);
    Ok(bytes)
}

/// Reads a safetensors file into `f32` host tensors, with its string metadata (empty if the
/// file has none).
///
/// Rejects malformed or truncated files and unsupported dtypes with a message naming the file
/// and, where it applies, the key. Values are not checked for NaN/inf here; see
/// [`check_finite`].
pub fn load_safetensors(
    path: impl AsRef<Path>,
) -> Result<(BTreeMap<String, HostTensor>, HashMap<String, String>)> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|e| DataError::io(path, "read", e))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| DataError::bad_file(path, describe_parse_error(&bytes, &e)))?;
    let (_, meta) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| DataError::bad_file(path, describe_parse_error(&bytes, &e)))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let mut out = BTreeMap::new();
    for (name, view) in st.iter() {
        let data = to_f32(view.dtype(), view.data())
            .map_err(|reason| DataError::bad_file(path, format!("tensor '{name}': {reason}")))?;
        out.insert(
            name.to_string(),
            HostTensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok((out, metadata))
}

/// Converts raw little-endian tensor bytes of a supported dtype to `f32`.
fn to_f32(dtype: Dtype, data: &[u8]) -> std::result::Result<Vec<f32>, String> {
    match dtype {
        Dtype::F32 => Ok(data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()),
        Dtype::F16 => Ok(data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect()),
        Dtype::BF16 => Ok(data
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect()),
        Dtype::F64 => data
            .chunks_exact(8)
            .enumerate()
            .map(|(i, c)| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                let v = f64::from_le_bytes(a);
                let f = v as f32;
                if v.is_finite() && !f.is_finite() {
                    Err(format!(
                        "F64 value {v} at flat index {i} is outside the f32 range"
                    ))
                } else {
                    Ok(f)
                }
            })
            .collect(),
        other => Err(format!(
            "dtype {other:?} is not supported (expected F32; F64, F16 and BF16 are converted)"
        )),
    }
}

/// Turns a safetensors parse error into words, diagnosing truncation precisely.
fn describe_parse_error(bytes: &[u8], err: &SafeTensorError) -> String {
    let len = bytes.len();
    if len < 8 {
        return format!("not a safetensors file: only {len} bytes (a safetensors file starts with an 8-byte header length)");
    }
    let mut n8 = [0u8; 8];
    n8.copy_from_slice(&bytes[..8]);
    let n = u64::from_le_bytes(n8);
    if n > (len as u64).saturating_sub(8) {
        return format!(
            "not a safetensors file or truncated: header declares {n} bytes but the file has only {} after the length",
            len - 8
        );
    }
    if let SafeTensorError::MetadataIncompleteBuffer = err {
        // Compute where the data should end from the header.
        let header = &bytes[8..8 + n as usize];
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(header) {
            let end = map
                .iter()
                .filter(|(k, _)| k.as_str() != "__metadata__")
                .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
                .max()
                .unwrap_or(0);
            // Offsets come from the damaged file: add without overflowing.
            let expected = (8 + n).saturating_add(end);
            return if (len as u64) < expected {
                format!("truncated: tensor data should end at byte {expected} but the file has {len} bytes")
            } else {
                format!(
                    "{} unexpected trailing bytes after the tensor data (file {len} bytes, data ends at {expected})",
                    len as u64 - expected
                )
            };
        }
    }
    format!("not a valid safetensors file: {err}")
}

/// Checks every value of every tensor for NaN or infinity.
///
/// The error lists each offending key with its count of non-finite values and the first one's
/// flat index, so a diverged checkpoint is diagnosed in one message.
pub fn check_finite(tensors: &BTreeMap<String, HostTensor>) -> Result<()> {
    let mut bad = Vec::new();
    for (name, t) in tensors {
        let mut count = 0usize;
        let mut first = None;
        for (i, v) in t.data.iter().enumerate() {
            if !v.is_finite() {
                count += 1;
                first.get_or_insert((i, *v));
            }
        }
        if let Some((i, v)) = first {
            bad.push(format!(
                "'{name}' has {count} non-finite value(s), first {v} at flat index {i}"
            ));
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(DataError::NonFinite(bad.join("; ")))
    }
}

/// Checks that `tensors` holds exactly the `expected` keys with the expected shapes.
///
/// Reports every missing key, every unexpected key and every shape mismatch together in one
/// [`DataError::KeyMismatch`], so a checkpoint/config disagreement is understood at a glance.
pub fn expect_keys<K, S>(tensors: &BTreeMap<String, HostTensor>, expected: &[(K, S)]) -> Result<()>
where
    K: AsRef<str>,
    S: AsRef<[usize]>,
{
    let mut missing = Vec::new();
    let mut wrong_shape = Vec::new();
    for (key, shape) in expected {
        let (key, shape) = (key.as_ref(), shape.as_ref());
        match tensors.get(key) {
            None => missing.push(key.to_string()),
            Some(t) if t.shape != shape => {
                wrong_shape.push((key.to_string(), shape.to_vec(), t.shape.clone()))
            }
            Some(_) => {}
        }
    }
    let unexpected: Vec<String> = tensors
        .keys()
        .filter(|k| !expected.iter().any(|(e, _)| e.as_ref() == k.as_str()))
        .cloned()
        .collect();
    if missing.is_empty() && unexpected.is_empty() && wrong_shape.is_empty() {
        Ok(())
    } else {
        Err(DataError::KeyMismatch {
            missing,
            unexpected,
            wrong_shape,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_tensors_and_metadata_are_the_same_bytes() {
        let dir = std::env::temp_dir().join(format!("rssm-st-sorted-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mut tensors = BTreeMap::new();
        tensors.insert("b".to_string(), HostTensor::zeros(vec![3]));
        tensors.insert(
            "a".to_string(),
            HostTensor::new(vec![2], vec![1.0, 2.0]).unwrap(),
        );
        let meta: HashMap<String, String> = (0..8)
            .map(|i| (format!("key{i}"), format!("value \"{i}\"")))
            .collect();
        let path = dir.join("t.safetensors");
        let mut first: Option<Vec<u8>> = None;
        for _ in 0..8 {
            // A new map each time: a new random order.
            let meta: HashMap<String, String> = meta.clone().into_iter().collect();
            save_safetensors(&path, &tensors, Some(meta)).unwrap();
            let bytes = fs::read(&path).unwrap();
            match &first {
                Some(f) => assert_eq!(f, &bytes),
                None => first = Some(bytes),
            }
        }
        let (back, back_meta) = load_safetensors(&path).unwrap();
        assert_eq!(back, tensors);
        assert_eq!(back_meta, meta);
        fs::remove_dir_all(&dir).unwrap();
    }
}
