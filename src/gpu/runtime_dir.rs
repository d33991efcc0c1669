//! A private `XDG_RUNTIME_DIR` when the environment has none.
//!
//! Mesa's drivers (lavapipe, and the window-system code loaded with them) print
//! `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` when the variable is
//! missing — in containers, CI jobs and ssh sessions without a login session. Nothing fails,
//! but a new user reads the lines as the program failing. Before the first wgpu instance is
//! created we therefore point the variable at a folder only this user can enter
//! (`$TMPDIR/rssm-runtime-<uid>`, mode 0700), the same for every process of the user so
//! nothing accumulates. A variable that is already set is left alone.

use std::path::{Path, PathBuf};
use std::sync::Once;

const VAR: &str = "XDG_RUNTIME_DIR";

/// Sets `XDG_RUNTIME_DIR` to a private folder if it is unset or empty. Runs once per process;
/// any failure leaves the environment as it was (the only cost is Mesa's message).
pub fn ensure_runtime_dir() {
    static ONCE: Once = Once::new();
    // Every instance is created after this returns, and concurrent callers wait for it, so no
    // driver reads the environment while it is being changed.
    ONCE.call_once(|| {
        if std::env::var_os(VAR).is_some_and(|v| !v.is_empty()) {
            return;
        }
        if let Some(dir) = private_dir(&std::env::temp_dir()) {
            std::env::set_var(VAR, dir);
        }
    });
}

/// `base/rssm-runtime-<uid>`, created with mode 0700 if absent; `None` if it exists but is not
/// a real folder owned by this user and closed to others (then another user could read or
/// plant files in it).
#[cfg(unix)]
fn private_dir(base: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    // The owner of a file we just made is our user id, without a libc call.
    let uid = {
        let probe = tempfile::NamedTempFile::new_in(base).ok()?;
        probe.as_file().metadata().ok()?.uid()
    };
    let dir = base.join(format!("rssm-runtime-{uid}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(_) => return None,
    }
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    let private = meta.is_dir() && meta.uid() == uid && meta.permissions().mode() & 0o077 == 0;
    private.then_some(dir)
}

#[cfg(not(unix))]
fn private_dir(_base: &Path) -> Option<PathBuf> {
    None
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_a_private_folder_and_refuses_an_open_one() {
        let base = tempfile::tempdir().unwrap();
        let dir = private_dir(base.path()).expect("a private folder");
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
        // The same folder again (every process of the user shares it).
        assert_eq!(private_dir(base.path()), Some(dir.clone()));
        // Opened to others: refused.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(private_dir(base.path()), None);
        // A file, or a link, in its place: refused.
        std::fs::remove_dir(&dir).unwrap();
        std::fs::write(&dir, b"x").unwrap();
        assert_eq!(private_dir(base.path()), None);
        std::fs::remove_file(&dir).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), &dir).unwrap();
        assert_eq!(private_dir(base.path()), None);
    }
}
