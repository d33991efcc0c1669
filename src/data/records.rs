//! Record files that a run appends to (`metrics.jsonl`: one JSON object a line), cut back to
//! a checkpoint when the run resumes, so that a run killed and resumed leaves the records of an
//! uninterrupted one.
//!
//! Between a checkpoint and a crash a run goes on appending records; the resumed run, which
//! restarts from the checkpoint, writes them again. So before it appends anything, a resuming
//! run rewrites the file keeping only the records the checkpoint accounts for
//! ([`resume_jsonl`]): each record says where it belongs through the counters it carries (the
//! training step, the environment steps, ...), and a record is kept when every counter it has
//! is at most the checkpoint's ([`Limits`]). A last line cut short by the kill (no closing
//! newline, or no complete JSON object) is dropped, as is any other line that does not parse;
//! neither is an error. The rewrite is atomic ([`write_atomically`]): a crash during it leaves
//! the file as it was. A run that starts afresh empties the file instead ([`start_jsonl`]).
//!
//! [`write_atomically`]: super::atomic::write_atomically

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use super::atomic::write_atomically;
use super::{DataError, Result};

/// Where a checkpoint stands: `(JSON pointer, value)` pairs, e.g. `("/step", 120)` or
/// `("/world_model/step", 40)`. A record belongs to the checkpoint when each counter it holds
/// (as a number) is at most the checkpoint's value; a counter it lacks does not decide.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits(pub Vec<(String, f64)>);

impl Limits {
    /// Limits from `(pointer, value)` pairs.
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, u64)>) -> Limits {
        Limits(
            pairs
                .into_iter()
                .map(|(p, v)| (p.to_string(), v as f64))
                .collect(),
        )
    }

    /// Whether `record` belongs to the checkpoint.
    pub fn admits(&self, record: &serde_json::Value) -> bool {
        self.0.iter().all(|(pointer, max)| {
            record
                .pointer(pointer)
                .and_then(|v| v.as_f64())
                .is_none_or(|v| v <= *max)
        })
    }
}

/// What [`cut_jsonl`] did to a file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cut {
    /// Records kept.
    pub kept: usize,
    /// Records from after the checkpoint, removed.
    pub after: usize,
    /// Lines that were not a JSON object (a torn last line), removed.
    pub unreadable: usize,
}

impl Cut {
    /// Whether the file was changed.
    pub fn changed(&self) -> bool {
        self.after + self.unreadable > 0
    }
}

/// Rewrites the JSON-lines file `path` keeping, in order and byte for byte, the records for
/// which `keep` is true; lines that are not a JSON object (a last line torn by a kill) and
/// blank lines are dropped. The file is replaced atomically, and only when something changes
/// (a complete last record without its newline gets one). A missing file is left missing.
pub fn cut_jsonl(path: &Path, keep: impl Fn(&serde_json::Value) -> bool) -> Result<Cut> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Cut::default()),
        Err(e) => return Err(DataError::io(path, "read", e)),
    };
    let mut cut = Cut::default();
    let mut out = Vec::with_capacity(bytes.len());
    for line in bytes.split(|&b| b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<serde_json::Value>(line) {
            Ok(v) if v.is_object() => {
                if keep(&v) {
                    cut.kept += 1;
                    out.extend_from_slice(line);
                    out.push(b'\n');
                } else {
                    cut.after += 1;
                }
            }
            _ => cut.unreadable += 1,
        }
    }
    if out != bytes {
        write_atomically(path, |w| {
            w.write_all(&out)
                .map_err(|e| DataError::io(path, "write (temporary file)", e))
        })?;
    }
    Ok(cut)
}

/// Opens the record file `path` of a resumed run for appending, after cutting it back to the
/// checkpoint at `limits` ([`cut_jsonl`] with [`Limits::admits`]).
pub fn resume_jsonl(path: &Path, limits: &Limits) -> Result<(File, Cut)> {
    let cut = cut_jsonl(path, |v| limits.admits(v))?;
    Ok((open_append(path)?, cut))
}

/// Opens the record file `path` of a run that starts afresh: emptied (an earlier run's records
/// in the same folder are not this run's), then appended to.
pub fn start_jsonl(path: &Path) -> Result<File> {
    if path.exists() {
        write_atomically(path, |_| Ok(()))?;
    }
    open_append(path)
}

/// Opens the record file `path` of a run: resumed at the checkpoint `resumed` (cut back to it,
/// [`resume_jsonl`]) or started afresh (`None`, [`start_jsonl`]). The temporaries that a kill
/// left in the file's folder are removed first.
pub fn open_run_records(path: &Path, resumed: Option<&Limits>) -> Result<File> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        super::atomic::remove_stale_temporaries(dir)?;
    }
    match resumed {
        Some(limits) => Ok(resume_jsonl(path, limits)?.0),
        None => start_jsonl(path),
    }
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| DataError::io(path, "open for appending", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("rssm-records-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn cuts_back_to_the_checkpoint_and_drops_a_torn_last_line() {
        let dir = tmp("cut");
        let path = dir.join("metrics.jsonl");
        let mut text = String::new();
        for step in 1..=9 {
            text.push_str(&format!("{{\"step\":{step},\"loss\":{}.5}}\n", 10 - step));
        }
        text.push_str("{\"step\":10,\"lo");
        std::fs::write(&path, &text).unwrap();
        let (mut f, cut) = resume_jsonl(&path, &Limits::new([("/step", 7)])).unwrap();
        assert_eq!(
            cut,
            Cut {
                kept: 7,
                after: 2,
                unreadable: 1
            }
        );
        writeln!(f, "{{\"step\":8,\"loss\":2.5}}").unwrap();
        let back = std::fs::read_to_string(&path).unwrap();
        let want: String = text.lines().take(8).map(|l| format!("{l}\n")).collect();
        assert_eq!(back, want);
        // Nothing to cut: the file is not rewritten, and a missing file stays missing.
        let cut = cut_jsonl(&path, |_| true).unwrap();
        assert!(!cut.changed() && cut.kept == 8);
        assert_eq!(
            cut_jsonl(&dir.join("none.jsonl"), |_| true).unwrap().kept,
            0
        );
        assert!(!dir.join("none.jsonl").exists());
        // A complete last record without its newline is kept and gets one.
        std::fs::write(&path, "{\"step\":1}\n{\"step\":2}").unwrap();
        cut_jsonl(&path, |_| true).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"step\":1}\n{\"step\":2}\n"
        );
        // A fresh start empties the file; no temporary is left.
        let mut f = start_jsonl(&path).unwrap();
        writeln!(f, "{{\"step\":1}}").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"step\":1}\n");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn limits_compare_the_counters_a_record_has() {
        let l = Limits::new([("/world_model/step", 20), ("/env_steps", 500)]);
        let v = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        assert!(l.admits(&v(r#"{"env_steps":500,"world_model":{"step":20}}"#)));
        assert!(!l.admits(&v(r#"{"env_steps":500,"world_model":{"step":30}}"#)));
        assert!(l.admits(&v(r#"{"kind":"eval","env_steps":440}"#)));
        assert!(!l.admits(&v(r#"{"kind":"collect","env_steps":560}"#)));
        assert!(l.admits(&v(r#"{"note":"no counters"}"#)));
    }
}
