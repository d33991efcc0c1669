//! [`Tuning`]: every choice the engine makes between equivalent kernels, decided once when the
//! device is created (from its [`AdapterReport`] and the overrides) and carried by the [`Gpu`]
//! handle. Ops read it from the device they run on; nothing else chooses a kernel.
//!
//! Overrides come from one parser ([`TuningOverrides::parse`]): `RSSM_TUNING` (and `--tuning`,
//! Python's `Device(tuning=...)`) is a comma-separated list of `key=value`, with the keys of
//! [`Tuning`]'s `Display` (`lanes=off,path=per-op`). The older single-choice variables
//! (`RSSM_LANES`, `RSSM_OBSERVE_PATH`, `RSSM_SUBNORMALS`) are read as aliases of their keys;
//! `RSSM_TUNING` wins over them.
//!
//! A variant the device cannot run (the subgroup kernels without 8-lane subgroups) is never
//! chosen, forced or not: [`Tuning::within`].
//!
//! Every variant kept here pays its way end to end on some device's default job
//! (docs/performance.md); those that did not (8-float loads, channels-innermost convolutions,
//! zero-padded narrow inputs) were removed, and their keys are refused with a note saying so
//! ([`REMOVED_KEYS`]).
//!
//! [`Gpu`]: crate::gpu::Gpu

use crate::error::{Error, Result};
use crate::gpu::AdapterReport;

/// How the RSSM runs over time (`observe`) and imagination runs over the horizon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RssmPath {
    /// The persistent kernels of `ops::rssm` / `ops::imagine`: a handful of dispatches whatever
    /// the number of steps. Where a shape does not fit the device they fall back to per-op.
    Fused,
    /// One kernel per op per time step: the readable reference.
    PerOp,
}

impl std::fmt::Display for RssmPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RssmPath::Fused => "fused",
            RssmPath::PerOp => "per-op",
        })
    }
}

/// The fused RSSM kernels' workgroup shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tiling {
    /// 256 threads per workgroup, tiles of about B/32 rows: many workgroups in flight.
    Gpu,
    /// 64 threads, tiles as large as workgroup memory allows, at least two workgroups: a CPU
    /// driver runs a workgroup's threads as a loop on one core.
    Cpu,
}

/// The kernel choices of one device. `Display` prints it in the override syntax, so a printed
/// tuning can be given back as `RSSM_TUNING`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tuning {
    /// The subgroup kernels (`matmul_lanes`, `conv_lanes`): they share loads across the 8
    /// lanes of a subgroup, which pays on CPU drivers. Needs 8-lane subgroups.
    pub lanes: bool,
    /// `matmul_vec4`'s register block per invocation: 8x8 (`true`) or 4x4.
    pub wide_blocks: bool,
    /// Output positions per `conv_main` invocation and columns per `wgrad` invocation: 8 or 16.
    pub conv_block: u32,
    /// `observe` and imagination: fused kernels or per-op.
    pub path: RssmPath,
    /// The fused kernels' workgroup shape.
    pub tiling: Tiling,
    /// Rows per workgroup tile of the fused kernels (at most `ops::rssm::MAX_TILE_ROWS`, and
    /// as many as workgroup memory allows); `None`: the tiling's own rule (about B/32 rows on
    /// GPUs, at least two tiles on CPU drivers). Chosen by measurement (`rssm tune`), never by
    /// a rule.
    pub tile_rows: Option<u32>,
    /// Subnormal floats flushed to zero on a CPU driver's threads (see `gpu::denormals`);
    /// decided before the device exists, since its threads inherit the mode.
    pub flush_subnormals: bool,
}

impl Tuning {
    /// Today's rules for a device, before overrides: the subgroup kernels, 8x8 blocks,
    /// 16-wide conv blocks and the per-op path on CPU drivers; 4x4 blocks, 8-wide conv
    /// blocks (16x16 accumulators would not fit a GPU's registers), the fused path and its GPU
    /// tiling on GPUs. (The measurements behind each rule: docs/performance.md.)
    pub fn rules(report: &AdapterReport) -> Tuning {
        let cpu = report.is_cpu();
        Tuning {
            lanes: cpu,
            wide_blocks: cpu,
            conv_block: if cpu { 16 } else { 8 },
            path: if cpu {
                RssmPath::PerOp
            } else {
                RssmPath::Fused
            },
            tiling: if cpu { Tiling::Cpu } else { Tiling::Gpu },
            tile_rows: None,
            flush_subnormals: true,
        }
        .within(report)
    }

    /// The rules with `overrides` applied, then limited to what the device can run.
    pub fn decide(report: &AdapterReport, overrides: &TuningOverrides) -> Tuning {
        overrides.apply(Tuning::rules(report)).within(report)
    }

    /// This tuning without the variants `report`'s device cannot run.
    pub fn within(self, report: &AdapterReport) -> Tuning {
        Tuning {
            lanes: self.lanes && report.subgroup_lanes == Some(8),
            conv_block: if self.conv_block <= 8 { 8 } else { 16 },
            tile_rows: self.tile_rows.map(|r| r.max(1)),
            ..self
        }
    }

    /// Why each choice was made on `report`'s device, a line per key (for `rssm info`).
    pub fn explain(&self, report: &AdapterReport) -> Vec<String> {
        let rules = Tuning::rules(report);
        let origin = |same: bool| if same { "rule" } else { "override" };
        let kind = if report.is_cpu() { "CPU driver" } else { "GPU" };
        let lanes_why = match report.subgroup_lanes {
            Some(8) => format!("{kind}, 8-lane subgroups"),
            Some(n) => format!("subgroups of {n} lanes, the kernels need 8"),
            None => "no subgroup operations".into(),
        };
        vec![
            format!(
                "lanes={} ({}: {lanes_why})",
                on(self.lanes),
                origin(self.lanes == rules.lanes)
            ),
            format!(
                "wide_blocks={} ({}: {kind})",
                on(self.wide_blocks),
                origin(self.wide_blocks == rules.wide_blocks)
            ),
            format!(
                "conv_block={} ({}: {kind})",
                self.conv_block,
                origin(self.conv_block == rules.conv_block)
            ),
            format!(
                "path={} ({}: {kind}; where a shape does not fit, per-op)",
                self.path,
                origin(self.path == rules.path)
            ),
            format!(
                "tiling={} ({}: {kind})",
                tiling(self.tiling),
                origin(self.tiling == rules.tiling)
            ),
            format!(
                "tile_rows={} ({})",
                tile_rows(self.tile_rows),
                if self.tile_rows == rules.tile_rows {
                    "rule: as many rows as keep the device's workgroups busy"
                } else {
                    "override"
                }
            ),
            format!(
                "subnormals={} ({})",
                if self.flush_subnormals {
                    "flush"
                } else {
                    "keep"
                },
                origin(self.flush_subnormals == rules.flush_subnormals)
            ),
        ]
    }
}

fn on(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

fn tile_rows(r: Option<u32>) -> String {
    r.map_or_else(|| "auto".to_string(), |r| r.to_string())
}

fn tiling(t: Tiling) -> &'static str {
    match t {
        Tiling::Gpu => "gpu",
        Tiling::Cpu => "cpu",
    }
}

impl std::fmt::Display for Tuning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "lanes={},wide_blocks={},conv_block={},path={},tiling={},tile_rows={},subnormals={}",
            on(self.lanes),
            on(self.wide_blocks),
            self.conv_block,
            self.path,
            tiling(self.tiling),
            tile_rows(self.tile_rows),
            if self.flush_subnormals {
                "flush"
            } else {
                "keep"
            },
        )
    }
}

/// Forced choices; `None` leaves a choice to the rules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TuningOverrides {
    pub lanes: Option<bool>,
    pub wide_blocks: Option<bool>,
    pub conv_block: Option<u32>,
    pub path: Option<RssmPath>,
    pub tiling: Option<Tiling>,
    pub tile_rows: Option<u32>,
    pub flush_subnormals: Option<bool>,
}

/// The variable holding the overrides.
pub const TUNING_ENV: &str = "RSSM_TUNING";

/// Older variables, each read as one key of [`TUNING_ENV`].
pub const ALIASES: &[(&str, &str)] = &[
    ("RSSM_LANES", "lanes"),
    ("RSSM_OBSERVE_PATH", "path"),
    ("RSSM_SUBNORMALS", "subnormals"),
];

/// Every key and the values it takes, for help texts and errors.
pub const KEYS: &str = "lanes=on|off, wide_blocks=on|off, conv_block=8|16, path=fused|per-op, \
     tiling=gpu|cpu, tile_rows=1..8, subnormals=flush|keep (each also =auto)";

/// Keys of variants that were removed because they did not pay their way, and the variables
/// that were their aliases: refused with this note rather than as unknown.
pub const REMOVED_KEYS: &[(&str, &str)] = &[
    (
        "wide_loads",
        "the 8-float-load matmul was removed: it gained under 10% on the default CPU job \
         (docs/performance.md)",
    ),
    (
        "layout",
        "the channels-innermost convolutions were removed: they gained nothing on the default \
         CPU job; every convolution runs NCHW (docs/performance.md)",
    ),
    (
        "pad_narrow",
        "the zero-padding of narrow linear inputs was removed: it gained under 10% on the \
         default CPU job; the subgroup matmul takes any width (docs/performance.md)",
    ),
];

/// Variables of removed keys ([`REMOVED_KEYS`]): still set, they get a clear error.
pub const REMOVED_ALIASES: &[(&str, &str)] =
    &[("RSSM_WIDE_LOADS", "wide_loads"), ("RSSM_NHWC", "layout")];

impl TuningOverrides {
    /// Parse `key=value[,key=value...]` (empty: nothing forced). `auto` leaves a key to the
    /// rules; a key given twice takes the last value.
    pub fn parse(text: &str) -> Result<TuningOverrides> {
        let mut o = TuningOverrides::default();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = item.split_once('=').ok_or_else(|| {
                Error::Invalid(format!("tuning '{item}': expected key=value ({KEYS})"))
            })?;
            o.set(key.trim(), value.trim())?;
        }
        Ok(o)
    }

    /// Set one key from its text value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let bad = || Error::Invalid(format!("tuning {key}='{value}': expected one of {KEYS}"));
        let flag = |v: &str| match v {
            "on" | "true" | "1" => Ok(Some(true)),
            "off" | "false" | "0" => Ok(Some(false)),
            "auto" | "" => Ok(None),
            _ => Err(bad()),
        };
        match key {
            "lanes" => self.lanes = flag(value)?,
            "wide_blocks" => self.wide_blocks = flag(value)?,
            "conv_block" => {
                self.conv_block = match value {
                    "8" => Some(8),
                    "16" => Some(16),
                    "auto" | "" => None,
                    _ => return Err(bad()),
                }
            }
            "path" => {
                self.path = match value {
                    "fused" => Some(RssmPath::Fused),
                    "per-op" | "perop" => Some(RssmPath::PerOp),
                    "auto" | "" => None,
                    _ => return Err(bad()),
                }
            }
            "tiling" => {
                self.tiling = match value {
                    "gpu" => Some(Tiling::Gpu),
                    "cpu" => Some(Tiling::Cpu),
                    "auto" | "" => None,
                    _ => return Err(bad()),
                }
            }
            "tile_rows" => {
                self.tile_rows = match value {
                    "auto" | "" => None,
                    v => match v.parse::<u32>() {
                        Ok(r @ 1..=8) => Some(r),
                        _ => return Err(bad()),
                    },
                }
            }
            "subnormals" => {
                self.flush_subnormals = match value {
                    "flush" => Some(true),
                    "keep" => Some(false),
                    "auto" | "" => None,
                    _ => return Err(bad()),
                }
            }
            _ => {
                if let Some((_, why)) = REMOVED_KEYS.iter().find(|(k, _)| *k == key) {
                    return Err(Error::Invalid(format!(
                        "tuning key '{key}': {why}; remove it (keys: {KEYS})"
                    )));
                }
                return Err(Error::Invalid(format!(
                    "tuning key '{key}': expected one of {KEYS}"
                )));
            }
        }
        Ok(())
    }

    /// The overrides in the environment: the aliases, then [`TUNING_ENV`] over them. An error
    /// names the variable.
    pub fn from_env() -> Result<TuningOverrides> {
        let mut o = TuningOverrides::default();
        for (var, key) in REMOVED_ALIASES.iter().chain(ALIASES) {
            if let Ok(v) = std::env::var(var) {
                o.set(key, v.trim())
                    .map_err(|e| Error::Invalid(format!("{var}='{v}': {e}")))?;
            }
        }
        if let Ok(v) = std::env::var(TUNING_ENV) {
            let given = TuningOverrides::parse(&v)
                .map_err(|e| Error::Invalid(format!("{TUNING_ENV}='{v}': {e}")))?;
            o = given.over(o);
        }
        Ok(o)
    }

    /// `self`'s forced choices, and `base`'s where `self` forces none.
    pub fn over(self, base: TuningOverrides) -> TuningOverrides {
        TuningOverrides {
            lanes: self.lanes.or(base.lanes),
            wide_blocks: self.wide_blocks.or(base.wide_blocks),
            conv_block: self.conv_block.or(base.conv_block),
            path: self.path.or(base.path),
            tiling: self.tiling.or(base.tiling),
            tile_rows: self.tile_rows.or(base.tile_rows),
            flush_subnormals: self.flush_subnormals.or(base.flush_subnormals),
        }
    }

    /// `t` with the forced choices.
    pub fn apply(&self, t: Tuning) -> Tuning {
        Tuning {
            lanes: self.lanes.unwrap_or(t.lanes),
            wide_blocks: self.wide_blocks.unwrap_or(t.wide_blocks),
            conv_block: self.conv_block.unwrap_or(t.conv_block),
            path: self.path.unwrap_or(t.path),
            tiling: self.tiling.unwrap_or(t.tiling),
            tile_rows: self.tile_rows.or(t.tile_rows),
            flush_subnormals: self.flush_subnormals.unwrap_or(t.flush_subnormals),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_display() {
        let t = Tuning {
            lanes: true,
            wide_blocks: true,
            conv_block: 8,
            path: RssmPath::Fused,
            tiling: Tiling::Gpu,
            tile_rows: Some(3),
            flush_subnormals: false,
        };
        let o = TuningOverrides::parse(&t.to_string()).unwrap();
        let base = Tuning {
            lanes: false,
            wide_blocks: false,
            conv_block: 16,
            path: RssmPath::PerOp,
            tiling: Tiling::Cpu,
            tile_rows: None,
            flush_subnormals: true,
        };
        assert_eq!(o.apply(base), t);
    }

    #[test]
    fn bad_keys_and_values_are_errors_naming_them() {
        let e = TuningOverrides::parse("lanes=fastest")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lanes='fastest'"), "{e}");
        let e = TuningOverrides::parse("colour=red")
            .unwrap_err()
            .to_string();
        assert!(e.contains("'colour'"), "{e}");
        for removed in ["wide_loads=on", "layout=nhwc", "pad_narrow=on"] {
            let e = TuningOverrides::parse(removed).unwrap_err().to_string();
            assert!(e.contains("removed"), "{e}");
        }
        let e = TuningOverrides::parse("lanes").unwrap_err().to_string();
        assert!(e.contains("key=value"), "{e}");
        assert_eq!(
            TuningOverrides::parse(" , lanes=auto,").unwrap(),
            TuningOverrides::default()
        );
    }
}
