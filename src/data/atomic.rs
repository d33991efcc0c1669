//! Atomic file replacement, the one way every file of the program is written (checkpoints,
//! optimiser and loop state, episodes, pictures, plots).
//!
//! The content goes into a temporary file in the destination's folder (a rename is only
//! atomic within one file system), which is flushed, `fsync`ed and renamed over the
//! destination; then the folder is synced so the rename itself survives a power cut. A reader
//! (or a crash) therefore sees either the old file or the complete new one, never a
//! half-written file. If anything fails — or the writer panics — the temporary is removed and
//! the destination is untouched. Temporaries are named `.NAME.XXXXXX.tmp` (a leading dot, a
//! `.tmp` suffix), so folder scans for `*.npz` or `*.safetensors` never pick one up; a kill
//! (which skips the clean-up) can leave one, which [`remove_stale_temporaries`] removes.
//!
//! A folder of several files that must change together (a checkpoint: weights, optimiser
//! states, loop state) is replaced as a whole by [`write_folder_atomically`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

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

/// The two folders beside `dir` that [`write_folder_atomically`] uses: the new content while
/// it is written (`.NAME.next.tmp`) and the previous folder while the new one takes its name
/// (`.NAME.prev.tmp`).
fn folder_siblings(dir: &Path) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let name = dir
        .file_name()
        .ok_or_else(|| DataError::bad_file(dir, "folder has no name"))?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let sibling = |tag: &str| {
        let mut n = std::ffi::OsString::from(".");
        n.push(name);
        n.push(tag);
        parent.join(n)
    };
    Ok((sibling(".next.tmp"), sibling(".prev.tmp"), parent))
}

/// Replaces the folder `dir` as a whole: `fill` writes the new content into a staging folder
/// beside it (which starts as a copy of `dir` made of hard links, so files `fill` does not
/// write are kept), which then takes `dir`'s name. A checkpoint made of several files is
/// therefore never seen half old, half new: a crash at any moment leaves either the previous
/// folder or the complete new one, which [`recover_folder`] (called here first, and by a
/// resuming writer) puts back under `dir`'s name. On an error from `fill` the staging folder is
/// removed and `dir` is left as it was.
///
/// Between the two renames `dir` is briefly absent; a reader that finds it missing may call
/// [`recover_folder`] only if it is the folder's one writer.
pub fn write_folder_atomically<E, F>(dir: &Path, fill: F) -> std::result::Result<(), E>
where
    E: From<DataError>,
    F: FnOnce(&Path) -> std::result::Result<(), E>,
{
    recover_folder(dir)?;
    let (next, prev, parent) = folder_siblings(dir)?;
    if dir.is_dir() {
        link_tree(dir, &next)?;
    } else {
        std::fs::create_dir_all(&next)
            .map_err(|e| DataError::io(&next, "create the staging folder", e))?;
    }
    if let Err(e) = fill(&next) {
        let _ = std::fs::remove_dir_all(&next);
        return Err(e);
    }
    sync_folder(&next);
    if dir.exists() {
        std::fs::rename(dir, &prev)
            .map_err(|e| DataError::io(dir, "move the previous folder aside", e))?;
    }
    std::fs::rename(&next, dir)
        .map_err(|e| DataError::io(dir, "rename the staging folder into place", e))?;
    sync_folder(&parent);
    if prev.exists() {
        std::fs::remove_dir_all(&prev)
            .map_err(|e| DataError::io(&prev, "remove the previous folder", e))?;
    }
    Ok(())
}

/// Finishes or undoes a [`write_folder_atomically`] that a crash interrupted, so that `dir` is
/// the last complete folder written: the staging folder is complete once the previous folder
/// has been moved aside (it is then renamed into place); otherwise it is incomplete and
/// removed. Only the folder's writer may call this (it deletes the staging folder a running
/// writer is filling). Nothing to do is not an error.
pub fn recover_folder(dir: &Path) -> Result<()> {
    let (next, prev, parent) = folder_siblings(dir)?;
    if !dir.exists() {
        if prev.is_dir() && next.is_dir() {
            std::fs::rename(&next, dir)
                .map_err(|e| DataError::io(dir, "rename the staging folder into place", e))?;
        } else if prev.is_dir() {
            std::fs::rename(&prev, dir)
                .map_err(|e| DataError::io(dir, "put the previous folder back", e))?;
        }
        sync_folder(&parent);
    }
    for stale in [next, prev] {
        if stale.exists() {
            std::fs::remove_dir_all(&stale)
                .map_err(|e| DataError::io(&stale, "remove an interrupted folder write", e))?;
        }
    }
    Ok(())
}

/// `dst` as a copy of the folder tree `src` made of hard links (copies where the file system
/// has none); temporaries of interrupted writes are left out.
fn link_tree(src: &Path, dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst).map_err(|e| DataError::io(dst, "create the staging folder", e))?;
    let entries = std::fs::read_dir(src).map_err(|e| DataError::io(src, "list folder", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(src, "list folder", e))?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let kind = entry
            .file_type()
            .map_err(|e| DataError::io(&from, "inspect", e))?;
        if kind.is_dir() {
            link_tree(&from, &to)?;
        } else if kind.is_file()
            && !is_temporary(&entry.file_name())
            && std::fs::hard_link(&from, &to).is_err()
        {
            std::fs::copy(&from, &to).map_err(|e| DataError::io(&from, "copy", e))?;
        }
    }
    Ok(())
}

/// Whether `name` is one of [`write_atomically`]'s temporaries: `.NAME.XXXXXX.tmp`.
fn is_temporary(name: &std::ffi::OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    let Some(stem) = name.strip_suffix(".tmp") else {
        return false;
    };
    let Some((head, random)) = stem.rsplit_once('.') else {
        return false;
    };
    name.starts_with('.')
        && head.len() > 1
        && random.len() == 6
        && random.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Removes the temporaries that writes into `dir` left when the program was killed mid-write
/// (`.NAME.XXXXXX.tmp` files; a kill skips their clean-up). Only the folder's writer may call
/// this, before it writes. A missing folder is not an error. Returns how many were removed.
pub fn remove_stale_temporaries(dir: &Path) -> Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(DataError::io(dir, "list folder", e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, "list folder", e))?;
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && is_temporary(&entry.file_name()) {
            std::fs::remove_file(entry.path())
                .map_err(|e| DataError::io(entry.path(), "remove a stale temporary", e))?;
            removed += 1;
        }
    }
    Ok(removed)
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

    #[test]
    fn a_folder_is_replaced_as_a_whole_and_an_interrupted_replacement_recovers() {
        let root = std::env::temp_dir().join(format!("rssm-folder-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        let dir = root.join("ckpt");
        let write = |a: &[u8], b: &[u8]| {
            write_folder_atomically(&dir, |d| {
                write_bytes_atomically(&d.join("a"), a)?;
                write_bytes_atomically(&d.join("b"), b)
            })
        };
        write(b"a1", b"b1").unwrap();
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("sub").join("kept"), b"k").unwrap();
        write(b"a2", b"b2").unwrap();
        assert_eq!(fs::read(dir.join("a")).unwrap(), b"a2");
        // Files the writer does not write are kept.
        assert_eq!(fs::read(dir.join("sub").join("kept")).unwrap(), b"k");
        assert_eq!(names(&root), vec![std::ffi::OsString::from("ckpt")]);
        // A failing writer leaves the old folder.
        let e: Result<()> = write_folder_atomically(&dir, |d| {
            write_bytes_atomically(&d.join("a"), b"a3")?;
            Err(DataError::invalid("test", "boom"))
        });
        assert!(e.is_err());
        assert_eq!(fs::read(dir.join("a")).unwrap(), b"a2");
        assert_eq!(names(&root), vec![std::ffi::OsString::from("ckpt")]);
        let (next, prev, _) = folder_siblings(&dir).unwrap();
        let staged = |a: &[u8]| {
            fs::create_dir_all(&next).unwrap();
            fs::write(next.join("a"), a).unwrap();
        };
        // Killed while staging: the staging folder is incomplete and goes.
        staged(b"half");
        recover_folder(&dir).unwrap();
        assert_eq!(fs::read(dir.join("a")).unwrap(), b"a2");
        assert_eq!(names(&root), vec![std::ffi::OsString::from("ckpt")]);
        // Killed between the renames: the staged folder is complete and takes the name.
        staged(b"a4");
        fs::rename(&dir, &prev).unwrap();
        recover_folder(&dir).unwrap();
        assert_eq!(fs::read(dir.join("a")).unwrap(), b"a4");
        assert_eq!(names(&root), vec![std::ffi::OsString::from("ckpt")]);
        // Killed before the previous folder was removed.
        fs::create_dir_all(&prev).unwrap();
        recover_folder(&dir).unwrap();
        assert_eq!(names(&root), vec![std::ffi::OsString::from("ckpt")]);
        // Stale temporaries of single files are recognised and removed, nothing else.
        fs::write(dir.join(".a.Ab3xY9.tmp"), b"x").unwrap();
        fs::write(dir.join(".hidden.tmp"), b"x").unwrap();
        assert_eq!(remove_stale_temporaries(&dir).unwrap(), 1);
        assert!(dir.join(".hidden.tmp").exists());
        assert_eq!(remove_stale_temporaries(&root.join("none")).unwrap(), 0);
        fs::remove_dir_all(&root).unwrap();
    }
}
