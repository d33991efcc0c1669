//! Atomic file replacement: write a sibling temporary file, flush it to disk, rename it over
//! the destination.
//!
//! A reader (or a crash) therefore sees either the old file or the complete new one, never a
//! half-written file. The temporary lives in the destination's folder (a rename is only atomic
//! within one file system) and its name starts with a dot and ends in `.tmp`, so folder scans for
//! `*.npz` or `*.safetensors` never pick it up.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{DataError, Result};

/// Distinguishes temporaries of concurrent writers within one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The temporary path used while writing `path`.
fn temp_path(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| DataError::bad_file(path, "destination has no file name"))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.{}.tmp", std::process::id(), n));
    Ok(parent.join(tmp_name))
}

/// Writes `path` atomically: `write` fills a buffered temporary file, which is then flushed,
/// `fsync`ed and renamed over `path`. On any failure the temporary is removed and `path` is
/// left untouched.
pub(crate) fn write_atomically<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> Result<()>,
{
    let tmp = temp_path(path)?;
    let result = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| DataError::io(&tmp, "create temporary file", e))?;
        let mut writer = BufWriter::new(file);
        write(&mut writer)?;
        writer
            .flush()
            .map_err(|e| DataError::io(&tmp, "write temporary file", e))?;
        let file = writer
            .into_inner()
            .map_err(|e| DataError::io(&tmp, "write temporary file", e.into_error()))?;
        file.sync_all()
            .map_err(|e| DataError::io(&tmp, "sync temporary file to disk", e))?;
        drop(file);
        fs::rename(&tmp, path)
            .map_err(|e| DataError::io(path, "rename temporary file into place", e))
    })();
    match result {
        Ok(()) => {
            sync_parent(path);
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Best effort: make the rename itself durable by syncing the folder (Unix only; errors are
/// ignored because some file systems do not support syncing a folder).
fn sync_parent(path: &Path) {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if let Ok(dir) = File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("rssm-atomic-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.bin");
        write_atomically(&path, |w| {
            w.write_all(b"hello").unwrap();
            Ok(())
        })
        .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"hello");
        // A failing writer leaves the old content and no temporary.
        let err = write_atomically(&path, |w| {
            w.write_all(b"partial").unwrap();
            Err(DataError::invalid("test", "boom"))
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"hello");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.bin")]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
