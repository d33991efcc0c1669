//! Atomic file replacement, the one way every file of the program is written (checkpoints,
//! optimiser and loop state, episodes, pictures, plots).
//!
//! The content goes into a temporary file in the destination's folder (a rename is only
//! atomic within one file system), which is flushed, `fsync`ed and renamed over the
//! destination; then the folder is synced so the rename itself survives a power cut. A reader
//! (or a crash) therefore sees either the old file or the complete new one, never a
//! half-written file. If anything fails — or the writer panics — the temporary is removed and
//! the destination is untouched. Temporaries are named `.NAME.XXXXXX.tmp` (a leading dot, a
//! `.tmp` suffix), so folder scans for `*.npz` or `*.safetensors` never pick one up.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::{DataError, Result};

/// Writes `path` atomically: `write` fills a buffered temporary file, which is then flushed,
/// `fsync`ed and renamed over `path`, and the folder is synced. On any failure the temporary
/// is removed and `path` is left as it was.
pub fn write_atomically<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<&mut File>) -> Result<()>,
{
    let name = path
        .file_name()
        .ok_or_else(|| DataError::bad_file(path, "destination has no file name"))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    // Dropped on every early return (and on unwind), which deletes the file.
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    // A temporary file is private (0600) by default; the file it becomes should have the
    // permissions any newly created file gets (0666 less the umask), like `File::create`.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder
        .tempfile_in(parent)
        .map_err(|e| DataError::io(path, "create a temporary file beside", e))?;
    {
        let mut writer = BufWriter::new(tmp.as_file_mut());
        write(&mut writer)?;
        writer
            .flush()
            .map_err(|e| DataError::io(path, "write (temporary file)", e))?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| DataError::io(path, "sync (temporary file) to disk", e))?;
    tmp.persist(path)
        .map_err(|e| DataError::io(path, "rename the temporary file into place", e.error))?;
    sync_folder(parent);
    Ok(())
}

/// [`write_atomically`] with the whole content at hand.
pub fn write_bytes_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically(path, |w| {
        w.write_all(bytes)
            .map_err(|e| DataError::io(path, "write (temporary file)", e))
    })
}

/// Best effort: make the rename durable by syncing the folder (Unix only; errors are ignored
/// because some file systems do not support syncing a folder, and the data itself is synced).
fn sync_folder(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn names(dir: &Path) -> Vec<std::ffi::OsString> {
        let mut v: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_on_error_or_panic() {
        let dir = std::env::temp_dir().join(format!("rssm-atomic-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.bin");
        write_bytes_atomically(&path, b"hello").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"hello");
        write_bytes_atomically(&path, b"bye").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"bye");
        // The permissions of a newly created file, not a temporary's private ones.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let plain = dir.join("plain.bin");
            fs::write(&plain, b"x").unwrap();
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), mode(&plain));
            fs::remove_file(&plain).unwrap();
        }
        // A failing writer leaves the old content and no temporary.
        let err = write_atomically(&path, |w| {
            w.write_all(b"partial").unwrap();
            Err(DataError::invalid("test", "boom"))
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"bye");
        assert_eq!(names(&dir), vec![std::ffi::OsString::from("a.bin")]);
        // So does a panicking one.
        let caught = std::panic::catch_unwind(|| {
            let _ = write_atomically(&path, |w| {
                w.write_all(&[7u8; 100_000]).unwrap();
                panic!("writer panicked");
            });
        });
        assert!(caught.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"bye");
        assert_eq!(names(&dir), vec![std::ffi::OsString::from("a.bin")]);
        // A destination that cannot be written: an error naming it, nothing created.
        let missing = dir.join("no-such-folder").join("b.bin");
        let e = write_bytes_atomically(&missing, b"x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("b.bin"), "{e}");
        // A folder in the way of the rename: the error names it, no temporary is left.
        fs::create_dir(dir.join("c.bin")).unwrap();
        fs::write(dir.join("c.bin").join("inside"), b"x").unwrap();
        let e = write_bytes_atomically(&dir.join("c.bin"), b"x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.bin"), "{e}");
        assert_eq!(
            names(&dir),
            vec![
                std::ffi::OsString::from("a.bin"),
                std::ffi::OsString::from("c.bin")
            ]
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
