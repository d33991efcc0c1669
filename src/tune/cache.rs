//! The tuning cache: one JSON file (`tuning.json`) in the user's cache folder, a list of
//! [`Entry`]s, each the measurements of one adapter, driver, engine version and set of shapes.
//! Written atomically ([`crate::data::atomic`]); read leniently: a file or an entry that does
//! not parse, or one measured by another engine version or driver, is ignored with a note.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::measure::{choices_of, DecisionResult, Measurement};
use super::Shapes;
use crate::data::atomic::write_bytes_atomically;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, TuningOverrides};

/// The variable naming the cache folder (tests point it at a temporary one).
pub const CACHE_DIR_ENV: &str = "RSSM_CACHE_DIR";
/// The cache file's name in the folder.
pub const CACHE_FILE: &str = "tuning.json";
/// The file's format; another one is ignored (and replaced by the next `rssm tune`).
const FORMAT: u32 = 1;

/// What a cached tuning is for: the device (adapter, backend, driver), the engine version and
/// the shapes ([`Shapes`], with the storage-binding cap where one is in force).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKey {
    pub adapter: String,
    pub backend: String,
    pub driver: String,
    /// The engine's version (`CARGO_PKG_VERSION`): kernels change between versions.
    pub version: String,
    pub shapes: String,
}

impl CacheKey {
    /// The key of `shapes` on `gpu`'s device with this engine.
    pub fn new(gpu: &Gpu, shapes: &Shapes) -> CacheKey {
        let r = gpu.report();
        let mut shapes = shapes.to_string();
        if gpu.binding_limit() < r.max_storage_binding {
            shapes.push_str(&format!(",max_binding={}", gpu.binding_limit()));
        }
        CacheKey {
            adapter: r.name.clone(),
            backend: r.backend.clone(),
            driver: r.driver.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            shapes,
        }
    }

    /// The same device and shapes, whatever the version and driver.
    fn same_place(&self, other: &CacheKey) -> bool {
        self.adapter == other.adapter
            && self.backend == other.backend
            && self.shapes == other.shapes
    }
}

/// One measured tuning.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(flatten)]
    pub key: CacheKey,
    /// When it was measured (seconds since 1970, UTC).
    pub measured_unix: u64,
    pub budget_s: f64,
    pub spent_s: f64,
    pub reps: usize,
    /// `gpu-timestamps` or `wall-clock`.
    pub timing: String,
    /// The whole tuning found, in the override syntax (for reading; the choices are the
    /// measured decisions').
    pub tuning: String,
    pub decisions: Vec<DecisionResult>,
}

impl Entry {
    /// The entry of measurement `m` under `key`, dated now.
    pub fn new(key: CacheKey, m: &Measurement) -> Entry {
        Entry {
            key,
            measured_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            budget_s: m.budget_s,
            spent_s: m.spent_s,
            reps: m.reps,
            timing: m.timing.to_string(),
            tuning: m.tuning.to_string(),
            decisions: m.decisions.clone(),
        }
    }

    /// The measured decisions' choices, as overrides.
    pub fn choices(&self) -> Result<TuningOverrides> {
        choices_of(&self.decisions)
    }

    /// How many decisions were measured.
    pub fn measured_count(&self) -> usize {
        self.decisions.iter().filter(|d| d.measured).count()
    }

    /// When it was measured, `YYYY-MM-DD HH:MM UTC`.
    pub fn when(&self) -> String {
        let s = self.measured_unix;
        let (days, rest) = (s / 86_400, s % 86_400);
        let (y, m, d) = civil_from_days(days as i64);
        format!(
            "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
            rest / 3600,
            rest % 3600 / 60
        )
    }
}

/// The date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    format: u32,
    /// Parsed one by one, so that one bad entry costs only itself.
    entries: Vec<serde_json::Value>,
}

/// What a lookup found: the entry and its choices, and notes for the user (a stale or
/// unreadable cache).
#[derive(Clone, Debug, Default)]
pub struct Lookup {
    pub entry: Option<Entry>,
    pub choices: TuningOverrides,
    pub notes: Vec<String>,
}

/// The cache folder (or none: nothing is read or kept).
#[derive(Clone, Debug)]
pub struct Cache {
    dir: Option<PathBuf>,
}

impl Cache {
    /// `$RSSM_CACHE_DIR`, else `$XDG_CACHE_HOME/rssm`, else `$HOME/.cache/rssm`.
    pub fn from_env() -> Cache {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let dir = var(CACHE_DIR_ENV)
            .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("rssm")))
            .or_else(|| var("HOME").map(|d| d.join(".cache").join("rssm")));
        Cache { dir }
    }

    /// The cache in `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Cache {
        Cache {
            dir: Some(dir.into()),
        }
    }

    /// The cache file, where there is a folder for it.
    pub fn file(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(CACHE_FILE))
    }

    /// Every entry that parses, and a note per problem (no file is no problem).
    pub fn entries(&self) -> (Vec<Entry>, Vec<String>) {
        let Some(path) = self.file() else {
            return (vec![], vec![]);
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (vec![], vec![]),
            Err(e) => return (vec![], vec![unreadable(&path, &e.to_string())]),
        };
        let file: CacheFile = match serde_json::from_str(&text) {
            Ok(f) => f,
            Err(e) => return (vec![], vec![unreadable(&path, &e.to_string())]),
        };
        if file.format != FORMAT {
            return (
                vec![],
                vec![unreadable(
                    &path,
                    &format!("format {}, this engine reads {FORMAT}", file.format),
                )],
            );
        }
        let mut notes = vec![];
        let mut entries = vec![];
        for (i, v) in file.entries.into_iter().enumerate() {
            match serde_json::from_value::<Entry>(v) {
                Ok(e) => entries.push(e),
                Err(e) => notes.push(format!(
                    "tuning cache {}: entry {i} ignored ({e})",
                    path.display()
                )),
            }
        }
        (entries, notes)
    }

    /// The entry for `key`, with notes on what was ignored: an unreadable file, entries for
    /// these shapes on this device measured by another engine version or driver (stale), an
    /// entry whose choices do not parse.
    pub fn lookup(&self, key: &CacheKey) -> Lookup {
        let (entries, mut notes) = self.entries();
        let mut found = Lookup::default();
        for e in entries {
            if e.key == *key {
                match e.choices() {
                    Ok(c) => {
                        found.choices = c;
                        found.entry = Some(e);
                    }
                    Err(err) => notes.push(format!(
                        "tuning cache: the entry for these shapes is ignored ({err}); \
                         `rssm tune` measures again"
                    )),
                }
            } else if e.key.same_place(key) {
                notes.push(format!(
                    "tuning cache: the entry for these shapes was measured with rssm {} on \
                     driver '{}' (now rssm {} on '{}'): stale, ignored; `rssm tune` measures again",
                    e.key.version, e.key.driver, key.version, key.driver
                ));
            }
        }
        found.notes = notes;
        found
    }

    /// Keep `entry`: it replaces the entry of its key and the stale ones of its device and
    /// shapes; the file is rewritten atomically (an unreadable one is replaced).
    pub fn store(&self, entry: Entry) -> Result<()> {
        let path = self.file().ok_or_else(|| {
            Error::Invalid(format!(
                "no cache folder: set {CACHE_DIR_ENV}, XDG_CACHE_HOME or HOME"
            ))
        })?;
        let (entries, _) = self.entries();
        let mut kept: Vec<serde_json::Value> = entries
            .into_iter()
            .filter(|e| !e.key.same_place(&entry.key))
            .map(|e| serde_json::to_value(e).expect("entries serialise"))
            .collect();
        kept.push(serde_json::to_value(&entry).map_err(|e| Error::Invalid(e.to_string()))?);
        let text = serde_json::to_string_pretty(&CacheFile {
            format: FORMAT,
            entries: kept,
        })
        .map_err(|e| Error::Invalid(e.to_string()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::File {
                path: dir.to_path_buf(),
                msg: format!("create the cache folder: {e}"),
            })?;
        }
        write_bytes_atomically(&path, text.as_bytes())?;
        Ok(())
    }
}

fn unreadable(path: &Path, why: &str) -> String {
    format!(
        "tuning cache {} is unreadable ({why}): ignored; `rssm tune` rewrites it",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let e = |s| Entry {
            key: CacheKey {
                adapter: String::new(),
                backend: String::new(),
                driver: String::new(),
                version: String::new(),
                shapes: String::new(),
            },
            measured_unix: s,
            budget_s: 0.0,
            spent_s: 0.0,
            reps: 0,
            timing: String::new(),
            tuning: String::new(),
            decisions: vec![],
        };
        assert_eq!(e(0).when(), "1970-01-01 00:00 UTC");
        assert_eq!(e(951_782_400 + 3_660).when(), "2000-02-29 01:01 UTC");
        assert_eq!(e(1_796_601_600).when(), "2026-12-07 00:00 UTC");
    }
}
