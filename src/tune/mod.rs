//! Tuning by measurement: the engine times its equivalent kernels on the user's device, at the
//! configuration's own shapes, and remembers the fastest.
//!
//! [`Tuning::rules`](crate::gpu::Tuning::rules) are written from one machine's measurements.
//! Here every choice between equivalent kernels (a [`Decision`]: the matmul kernel, the
//! convolutions' block, the RSSM path, the fused
//! kernels' tiling and rows per tile) is a set of candidates the device can run, timed on a
//! world-model update plus a behaviour update of the configuration ([`measure`]):
//! coordinate-wise, one decision at a time with the others at their best so far, so the cost
//! is linear in the candidates; each candidate warmed up, then the median of a few steps,
//! round-robin with the incumbent so that the host's load falls on all of them alike; a
//! candidate far behind is dropped early; all within a time budget.
//!
//! The result is kept in a [`Cache`] (`$RSSM_CACHE_DIR`, `$XDG_CACHE_HOME/rssm` or
//! `~/.cache/rssm`), keyed by adapter, backend, driver, engine version and shapes, and reused:
//! [`tuned`] gives a device handle with the cached choices ([`TuneMode::Auto`], the default),
//! the rules ([`TuneMode::Off`]) or fresh measurements ([`TuneMode::Force`]). Forced choices
//! (`RSSM_TUNING`, `--tuning`) always win over the cache. Every candidate is a kernel the tests
//! prove equal to the reference, so a tuned run computes what an untuned one does.
//!
//! This module sits above the model and the agent (it runs them); nothing below reaches it.

mod cache;
mod measure;

pub use cache::{Cache, CacheKey, Entry, Lookup, CACHE_DIR_ENV, CACHE_FILE};
pub use measure::{
    measure, synthetic_batch, CandidateTime, DecisionResult, Measurement, Progress, TuneOptions,
};

use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuOptions, RssmPath, Tiling, Tuning, TuningOverrides};
use crate::model::Config;
use crate::ops::imagine::{imagine_plan, ImagineDims};
use crate::ops::rssm::{fused_plan, ObserveDims};

/// The variable choosing how a run gets its kernel choices: `off`, `auto` or `force`.
pub const TUNE_ENV: &str = "RSSM_TUNE";

/// How a run gets its kernel choices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TuneMode {
    /// The device's rules (and the forced choices).
    Off,
    /// The cached measurements for the configuration where there are some, else the rules.
    /// Nothing is measured.
    #[default]
    Auto,
    /// Measure now (within the default budget), cache, and use the result.
    Force,
}

impl TuneMode {
    /// `off`, `auto` or `force`.
    pub fn parse(text: &str) -> Result<TuneMode> {
        match text.trim() {
            "off" | "rules" => Ok(TuneMode::Off),
            "auto" | "" => Ok(TuneMode::Auto),
            "force" | "on" => Ok(TuneMode::Force),
            other => Err(Error::Invalid(format!(
                "tune mode '{other}': expected off, auto or force"
            ))),
        }
    }

    /// [`TUNE_ENV`], or `auto` when it is not set; an error names the variable.
    pub fn from_env() -> Result<TuneMode> {
        match std::env::var(TUNE_ENV) {
            Ok(v) => TuneMode::parse(&v).map_err(|e| Error::Invalid(format!("{TUNE_ENV}: {e}"))),
            Err(_) => Ok(TuneMode::Auto),
        }
    }
}

impl std::fmt::Display for TuneMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TuneMode::Off => "off",
            TuneMode::Auto => "auto",
            TuneMode::Force => "force",
        })
    }
}

/// The shapes a tuning is measured on and kept for: the model's widths, the batch and the
/// imagination horizon (the behaviour update imagines from all B*T posterior states).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shapes {
    pub deter: usize,
    pub stoch: usize,
    pub hidden: usize,
    pub depth: usize,
    pub units: usize,
    pub action_dim: usize,
    pub batch: usize,
    pub seq_len: usize,
    pub horizon: usize,
}

impl Shapes {
    /// `cfg`'s shapes with imagination horizon `horizon`.
    pub fn of(cfg: &Config, horizon: usize) -> Shapes {
        Shapes {
            deter: cfg.deter,
            stoch: cfg.stoch,
            hidden: cfg.hidden,
            depth: cfg.depth,
            units: cfg.units,
            action_dim: cfg.action_dim,
            batch: cfg.batch,
            seq_len: cfg.seq_len,
            horizon,
        }
    }

    fn observe(&self) -> ObserveDims {
        ObserveDims {
            batch: self.batch,
            steps: self.seq_len,
            stoch: self.stoch,
            action: self.action_dim,
            deter: self.deter,
            hidden: self.hidden,
            embed: 32 * self.depth,
        }
    }

    fn imagine(&self) -> ImagineDims {
        ImagineDims {
            starts: self.batch * self.seq_len,
            horizon: self.horizon,
            stoch: self.stoch,
            action: self.action_dim,
            deter: self.deter,
            hidden: self.hidden,
            embed: 32 * self.depth,
            units: self.units,
        }
    }
}

impl std::fmt::Display for Shapes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "deter={},stoch={},hidden={},depth={},units={},action_dim={},batch={},seq_len={},\
             horizon={}",
            self.deter,
            self.stoch,
            self.hidden,
            self.depth,
            self.units,
            self.action_dim,
            self.batch,
            self.seq_len,
            self.horizon
        )
    }
}

/// One choice between equivalent kernels, with the [`Tuning`] keys it sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// `observe` and imagination fused or per-op (`path`).
    Path,
    /// The fused kernels' workgroups (`tiling`), where they run.
    Tiling,
    /// The fused kernels' rows per tile (`tile_rows`), where they run.
    TileRows,
    /// The matmul kernel: subgroup lanes, or the vec4 kernel with 8x8 or 4x4 register blocks
    /// (`lanes`, `wide_blocks`).
    Matmul,
    /// Output positions per convolution invocation (`conv_block`).
    ConvBlock,
}

impl Decision {
    /// Every decision, in the order [`measure`] takes them: the largest effects first, so a
    /// short budget spends itself where it matters.
    pub const ALL: [Decision; 5] = [
        Decision::Path,
        Decision::Tiling,
        Decision::TileRows,
        Decision::Matmul,
        Decision::ConvBlock,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Decision::Path => "path",
            Decision::Tiling => "tiling",
            Decision::TileRows => "tile_rows",
            Decision::Matmul => "matmul",
            Decision::ConvBlock => "conv_block",
        }
    }

    /// The [`Tuning`] keys (its `Display` / `RSSM_TUNING` names) the decision sets.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Decision::Path => &["path"],
            Decision::Tiling => &["tiling"],
            Decision::TileRows => &["tile_rows"],
            Decision::Matmul => &["lanes", "wide_blocks"],
            Decision::ConvBlock => &["conv_block"],
        }
    }

    /// `t`'s values of this decision's keys, in the override syntax (`lanes=on,wide_blocks=on`).
    pub fn value(self, t: &Tuning) -> String {
        let keys = self.keys();
        t.to_string()
            .split(',')
            .filter(|kv| kv.split_once('=').is_some_and(|(k, _)| keys.contains(&k)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The variants of this decision the device can run, from `base` (first) with the other
    /// choices as they are, the forced ones kept; distinct in what they run (a candidate the
    /// device turns into another is dropped). Empty when the decision does not matter for these
    /// shapes: the fused tiling and rows per tile on the per-op path or where the fused kernels
    /// do not fit.
    pub fn candidates(
        self,
        gpu: &Gpu,
        base: &Tuning,
        forced: &TuningOverrides,
        shapes: &Shapes,
    ) -> Vec<Tuning> {
        let b = *base;
        let raw: Vec<Tuning> = match self {
            Decision::Path => vec![
                Tuning {
                    path: RssmPath::Fused,
                    ..b
                },
                Tuning {
                    path: RssmPath::PerOp,
                    ..b
                },
            ],
            Decision::Tiling | Decision::TileRows if !fused_runs(gpu, &b, shapes) => vec![],
            Decision::Tiling => [Tiling::Cpu, Tiling::Gpu]
                .map(|tiling| Tuning { tiling, ..b })
                .to_vec(),
            Decision::TileRows => {
                // Rows per tile that keep at least one workgroup per compute unit where the
                // batch allows (a CPU driver runs one per core; a GPU's count is not
                // reported, so every size is a candidate there).
                let units = if gpu.report().is_cpu() {
                    std::thread::available_parallelism().map_or(1, |n| n.get())
                } else {
                    1
                };
                let rows = shapes.batch;
                let mut v = vec![Tuning {
                    tile_rows: None,
                    ..b
                }];
                for r in [1usize, 2, 4, 8] {
                    if r == 1 || rows.div_ceil(r) >= units.min(rows) {
                        v.push(Tuning {
                            tile_rows: Some(r as u32),
                            ..b
                        });
                    }
                }
                v
            }
            Decision::Matmul => vec![
                Tuning { lanes: true, ..b },
                Tuning {
                    lanes: false,
                    wide_blocks: true,
                    ..b
                },
                Tuning {
                    lanes: false,
                    wide_blocks: false,
                    ..b
                },
            ],
            Decision::ConvBlock => [8, 16]
                .map(|conv_block| Tuning { conv_block, ..b })
                .to_vec(),
        };
        let effective = |t: Tuning| *gpu.with_tuning(forced.apply(t)).tuning();
        let base_eff = effective(b);
        let mut out = vec![base_eff];
        let mut seen = vec![runs_as(gpu, &base_eff, self, shapes)];
        for t in raw.into_iter().map(effective) {
            let what = runs_as(gpu, &t, self, shapes);
            if !seen.contains(&what) {
                seen.push(what);
                out.push(t);
            }
        }
        if out.len() < 2 {
            out.truncate(0);
        }
        out
    }
}

/// Whether the fused kernels run for `shapes` under `t` (for observe or imagination).
fn fused_runs(gpu: &Gpu, t: &Tuning, shapes: &Shapes) -> bool {
    let g = gpu.with_tuning(*t);
    t.path == RssmPath::Fused
        && (fused_plan(&g, &shapes.observe()).is_ok()
            || imagine_plan(&g, &shapes.imagine()).is_ok())
}

/// What a candidate runs, for telling candidates apart: its tuning, except that tile sizes
/// count by the plans they give (two row counts that give the same tiles are one candidate).
fn runs_as(gpu: &Gpu, t: &Tuning, decision: Decision, shapes: &Shapes) -> String {
    if decision != Decision::TileRows {
        return t.to_string();
    }
    let g = gpu.with_tuning(*t);
    format!(
        "{:?} {:?}",
        fused_plan(&g, &shapes.observe()),
        imagine_plan(&g, &shapes.imagine())
    )
}

/// The choices forced on a run: `opts.tuning` (`--tuning`, `Device(tuning=...)`) over
/// `RSSM_TUNING` and its aliases, as [`Gpu::new`] applies them.
pub fn forced_overrides(opts: &GpuOptions) -> Result<TuningOverrides> {
    Ok(opts.tuning.over(TuningOverrides::from_env()?))
}

/// Where a run's kernel choices came from.
#[derive(Clone, Debug)]
pub enum Source {
    /// `RSSM_TUNE=off`: the device's rules.
    Off,
    /// No measurement cached for this configuration: the device's rules.
    Rules,
    /// The cached measurements.
    Cached(Box<Entry>),
    /// Measured by this run (and cached).
    Measured(Box<Entry>),
}

impl Source {
    /// One line for the user.
    pub fn describe(&self) -> String {
        match self {
            Source::Off => "the device's rules (RSSM_TUNE=off)".into(),
            Source::Rules => "the device's rules (nothing measured for this configuration; \
                 `rssm tune` measures)"
                .into(),
            Source::Cached(e) => format!(
                "measured {} for these shapes ({} of {} decisions, cached)",
                e.when(),
                e.measured_count(),
                e.decisions.len()
            ),
            Source::Measured(e) => format!(
                "measured now, {:.0} s ({} of {} decisions)",
                e.spent_s,
                e.measured_count(),
                e.decisions.len()
            ),
        }
    }
}

/// A device handle with a run's kernel choices, where they came from, and notes for the user
/// (a stale or unreadable cache, a cache that could not be written).
pub struct Tuned {
    pub gpu: Gpu,
    pub source: Source,
    pub notes: Vec<String>,
}

/// How a run gets its kernel choices: the mode, the forced choices, the cache, and the
/// measurement's budget where it measures.
#[derive(Clone, Debug)]
pub struct TuneSettings {
    pub mode: TuneMode,
    /// `RSSM_TUNING` / `--tuning` / `Device(tuning=...)`: they win over measured choices.
    pub forced: TuningOverrides,
    pub cache: Cache,
    pub options: TuneOptions,
}

impl TuneSettings {
    /// The environment's: [`TUNE_ENV`] (or `mode` where given), the forced choices of `opts`
    /// and the environment ([`forced_overrides`]), [`Cache::from_env`], the default budget.
    pub fn from_env(opts: &GpuOptions, mode: Option<TuneMode>) -> Result<TuneSettings> {
        Ok(TuneSettings {
            mode: match mode {
                Some(m) => m,
                None => TuneMode::from_env()?,
            },
            forced: forced_overrides(opts)?,
            cache: Cache::from_env(),
            options: TuneOptions::default(),
        })
    }
}

/// `gpu` with the kernel choices for `cfg` (imagining `horizon` steps) under `settings.mode`:
/// the cached measurements (`Auto`) or new ones (`Force`, cached then), with the forced
/// choices over them; the device's own (`Off`, or `Auto` with nothing cached). Reading the
/// cache never fails: a stale or unreadable one is ignored with a note.
pub fn tuned(
    gpu: &Gpu,
    cfg: &Config,
    horizon: usize,
    settings: &TuneSettings,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Tuned> {
    let shapes = Shapes::of(cfg, horizon);
    let key = CacheKey::new(gpu, &shapes);
    let forced = &settings.forced;
    match settings.mode {
        TuneMode::Off => Ok(Tuned {
            gpu: gpu.clone(),
            source: Source::Off,
            notes: vec![],
        }),
        TuneMode::Auto => {
            let found = settings.cache.lookup(&key);
            Ok(match found.entry {
                Some(entry) => Tuned {
                    gpu: with_choices(gpu, &found.choices, forced),
                    source: Source::Cached(Box::new(entry)),
                    notes: found.notes,
                },
                None => Tuned {
                    gpu: gpu.clone(),
                    source: Source::Rules,
                    notes: found.notes,
                },
            })
        }
        TuneMode::Force => {
            let m = measure(gpu, cfg, horizon, forced, &settings.options, progress)?;
            let entry = Entry::new(key, &m);
            let mut notes = vec![];
            if let Err(e) = settings.cache.store(entry.clone()) {
                notes.push(format!("the tuning was not cached: {e}"));
            }
            Ok(Tuned {
                gpu: with_choices(gpu, &m.choices(), forced),
                source: Source::Measured(Box::new(entry)),
                notes,
            })
        }
    }
}

/// `gpu` with measured `choices` over its tuning and the `forced` choices over them.
pub fn with_choices(gpu: &Gpu, choices: &TuningOverrides, forced: &TuningOverrides) -> Gpu {
    gpu.with_tuning(forced.apply(choices.apply(*gpu.tuning())))
}
