//! Timing the candidates: [`measure`].

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Decision, Shapes};
use crate::agent::{Behaviour, BehaviourConfig, Starts};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tuning, TuningOverrides};
use crate::model::{Config, DeviceBatch, Trainer};
use crate::tensor::Tensor;

/// How long and how carefully [`measure`] measures.
#[derive(Clone, Copy, Debug)]
pub struct TuneOptions {
    /// Wall time for all decisions, warm-ups and compiles included; a decision that does not
    /// fit what is left keeps its current choice. (The starting tuning's warm-up, two or three
    /// steps, runs whatever the budget: every estimate is made from it.)
    pub budget: Duration,
    /// Timed steps per candidate (the median counts).
    pub reps: usize,
}

impl Default for TuneOptions {
    /// A minute, three steps per candidate: enough for every decision at the `small` preset on
    /// a CPU driver.
    fn default() -> Self {
        TuneOptions {
            budget: Duration::from_secs(60),
            reps: 3,
        }
    }
}

/// Where [`measure`] is, for a progress line.
#[derive(Clone, Debug)]
pub struct Progress {
    pub elapsed_s: f64,
    pub budget_s: f64,
    /// The decision being measured.
    pub decision: &'static str,
    /// What is running, in words.
    pub what: String,
}

/// One candidate of a decision and its times, milliseconds per step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CandidateTime {
    /// The decision's keys in the override syntax (`lanes=on,wide_blocks=on`).
    pub value: String,
    /// Median of a world-model update plus a behaviour update; `None` when not measured.
    pub ms: Option<f64>,
    /// Median world-model update.
    pub train_ms: Option<f64>,
    /// Median behaviour update.
    pub behaviour_ms: Option<f64>,
    /// Timed steps.
    pub samples: usize,
    /// Why it stopped early, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One decision: its candidates' times and the choice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecisionResult {
    /// [`Decision::name`].
    pub decision: String,
    /// The winner's keys in the override syntax; the rules' value where not measured.
    pub choice: String,
    /// The value before tuning (the device's rules and the forced choices).
    pub rule: String,
    /// Whether `choice` was measured (else: irrelevant here, forced, or out of budget).
    pub measured: bool,
    pub candidates: Vec<CandidateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What [`measure`] found.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// The fastest tuning found (the forced choices included).
    pub tuning: Tuning,
    /// The tuning it started from (rules and forced choices).
    pub start: Tuning,
    pub decisions: Vec<DecisionResult>,
    /// Wall seconds spent.
    pub spent_s: f64,
    pub budget_s: f64,
    pub reps: usize,
    /// `gpu-timestamps` or `wall-clock`.
    pub timing: &'static str,
}

impl Measurement {
    /// The measured decisions' choices, as overrides.
    pub fn choices(&self) -> TuningOverrides {
        choices_of(&self.decisions).unwrap_or_default()
    }
}

/// The measured decisions' choices, as overrides (an error for a choice that does not parse).
pub(super) fn choices_of(decisions: &[DecisionResult]) -> Result<TuningOverrides> {
    let text: Vec<&str> = decisions
        .iter()
        .filter(|d| d.measured)
        .map(|d| d.choice.as_str())
        .collect();
    TuningOverrides::parse(&text.join(","))
}

/// A synthetic batch of `cfg`'s shapes on `gpu` (constant frames, actions, rewards): what the
/// benchmarks and the tuner time.
pub fn synthetic_batch(gpu: &Gpu, cfg: &Config) -> Result<DeviceBatch> {
    let (b, t, a) = (cfg.batch, cfg.seq_len, cfg.action_dim);
    Ok(DeviceBatch {
        obs: Tensor::full(gpu, &[b, t, 3, 64, 64], 0.1)?,
        action: Tensor::full(gpu, &[b, t, a], 0.5)?,
        reward: Tensor::full(gpu, &[b, t], 1.0)?,
        cont: Tensor::full(gpu, &[b, t], 1.0)?,
        eps: None,
    })
}

/// A candidate dropped after warm-up when its first steady step takes this many times the
/// incumbent's.
const DROP_AFTER_WARMUP: f64 = 2.0;
/// ... and after two timed steps when its fastest takes this many times the best median.
const DROP_BEHIND: f64 = 1.25;
/// A candidate replaces the current choice only when its median is faster by this fraction:
/// within the noise of a shared host, the rule stays.
const MIN_GAIN: f64 = 0.05;
/// Steps after the first (which compiles) that may still create buffers or bind groups.
const MAX_SETTLE_STEPS: usize = 2;

/// One candidate running: a trainer and a behaviour learner on its handle, its samples.
struct Runner {
    tuning: Tuning,
    trainer: Trainer,
    behaviour: Behaviour,
    batch: DeviceBatch,
    starts: Option<Starts>,
    /// (world-model update, behaviour update) ms of the timed steps.
    samples: Vec<(f64, f64)>,
    /// The last step's total ms, timed or not.
    last_ms: Option<f64>,
    note: Option<String>,
    dropped: bool,
}

impl Runner {
    fn new(gpu: &Gpu, tuning: Tuning, cfg: &Config, bcfg: &BehaviourConfig) -> Result<Runner> {
        let g = gpu.with_tuning(tuning);
        Ok(Runner {
            tuning: *g.tuning(),
            batch: synthetic_batch(&g, cfg)?,
            trainer: Trainer::new(&g, cfg)?,
            behaviour: Behaviour::new(&g, cfg, bcfg.clone())?,
            starts: None,
            samples: vec![],
            last_ms: None,
            note: None,
            dropped: false,
        })
    }

    /// A world-model update then a behaviour update from its posterior states (the first
    /// step's, kept): their ms, and whether the step created buffers or bind groups.
    fn step(&mut self) -> Result<((f64, f64), bool)> {
        let gpu = self.trainer.model.gpu().clone();
        let before = gpu.stats();
        let Runner {
            trainer,
            behaviour,
            batch,
            starts,
            ..
        } = self;
        let train = timed(&gpu, || trainer.record_step(batch), |p| p.read().map(drop))?;
        if starts.is_none() {
            let (h, s) = trainer
                .last_posterior
                .clone()
                .ok_or_else(|| Error::Invalid("tune: no posterior after a step".into()))?;
            *starts = Some(Starts::new(&h, &s)?);
        }
        let st = starts.as_ref().expect("set above");
        let beh = timed(
            &gpu,
            || behaviour.record_update(&trainer.model, st),
            |p| p.read().map(drop),
        )?;
        let after = gpu.stats();
        let created = after.buffers_created != before.buffers_created
            || after.bind_groups_created != before.bind_groups_created;
        self.last_ms = Some(train + beh);
        Ok(((train, beh), created))
    }

    fn totals(&self) -> Vec<f64> {
        self.samples.iter().map(|(a, b)| a + b).collect()
    }

    fn median(&self) -> Option<f64> {
        median(self.totals())
    }

    /// What a step is expected to take: the median of the samples, else the last step.
    fn estimate(&self) -> Option<f64> {
        self.median().or(self.last_ms)
    }

    fn fastest(&self) -> Option<f64> {
        self.totals().into_iter().reduce(f64::min)
    }

    fn result(&self, decision: Decision) -> CandidateTime {
        CandidateTime {
            value: decision.value(&self.tuning),
            ms: self.median(),
            train_ms: median(self.samples.iter().map(|s| s.0).collect()),
            behaviour_ms: median(self.samples.iter().map(|s| s.1).collect()),
            samples: self.samples.len(),
            note: self.note.clone(),
        }
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    })
}

/// Whether steps are timed on the device: GPU timestamps where the adapter has them and is not
/// a CPU driver (whose "device" is the host: its timestamps say nothing the wall clock does
/// not, as `rssm bench` found).
fn device_timing(gpu: &Gpu) -> bool {
    gpu.report().timestamps && !gpu.report().is_cpu()
}

/// Milliseconds of one step: `record` records it, `finish` submits what is left, waits and
/// reads back. Device time between the first and the last compute pass where
/// [`device_timing`] and the step is one submit (plus its readback), else wall clock.
fn timed<P>(
    gpu: &Gpu,
    record: impl FnOnce() -> Result<P>,
    finish: impl FnOnce(P) -> Result<()>,
) -> Result<f64> {
    gpu.flush();
    let t0 = Instant::now();
    if device_timing(gpu) {
        let s0 = gpu.stats().submits;
        let (pending, secs) = gpu.gpu_time(record)?;
        finish(pending?)?;
        let wall = t0.elapsed().as_secs_f64() * 1e3;
        let submits = gpu.stats().submits - s0;
        return Ok(match secs {
            Some(s) if submits <= 2 => s * 1e3,
            _ => wall,
        });
    }
    finish(record()?)?;
    Ok(t0.elapsed().as_secs_f64() * 1e3)
}

/// The budget and the progress line.
struct Clock<'a> {
    start: Instant,
    budget: f64,
    progress: &'a mut dyn FnMut(&Progress),
}

impl Clock<'_> {
    fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Whether `ms` more fit the budget.
    fn fits(&self, ms: f64) -> bool {
        self.elapsed() + ms * 1e-3 <= self.budget
    }

    fn say(&mut self, decision: &'static str, what: String) {
        let p = Progress {
            elapsed_s: self.elapsed(),
            budget_s: self.budget,
            decision,
            what,
        };
        (self.progress)(&p);
    }
}

/// Time every [`Decision`]'s candidates on `cfg`'s world-model update plus a behaviour update
/// imagining `horizon` steps from all B*T posterior states (synthetic data), coordinate-wise
/// from `gpu`'s tuning, within `opts.budget`. A decision whose keys are all `forced` is left
/// alone; one that does not fit the time left keeps its current choice (and says so).
pub fn measure(
    gpu: &Gpu,
    cfg: &Config,
    horizon: usize,
    forced: &TuningOverrides,
    opts: &TuneOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Measurement> {
    cfg.validate()?;
    let bcfg = BehaviourConfig {
        horizon,
        ..BehaviourConfig::default()
    };
    bcfg.validate()?;
    let reps = opts.reps.max(1);
    let shapes = Shapes::of(cfg, horizon);
    let mut clock = Clock {
        start: Instant::now(),
        budget: opts.budget.as_secs_f64(),
        progress,
    };
    let start = *gpu.tuning();
    clock.say("start", format!("warm-up of {start}"));
    let mut inc = Runner::new(gpu, start, cfg, &bcfg)?;
    // The incumbent's warm-up: a step that compiles, then until one creates nothing.
    for i in 0..=MAX_SETTLE_STEPS {
        let (_, created) = inc.step()?;
        if i > 0 && !created {
            break;
        }
    }
    let mut decisions = vec![];
    for d in Decision::ALL {
        let candidates = d.candidates(gpu, &inc.tuning, forced, &shapes);
        let skip = |note: String| DecisionResult {
            decision: d.name().into(),
            choice: d.value(&inc.tuning),
            rule: d.value(&start),
            measured: false,
            candidates: vec![],
            note: Some(note),
        };
        if candidates.is_empty() {
            let why = if d.keys().iter().all(|k| is_forced(forced, k)) {
                "forced (RSSM_TUNING / --tuning)".to_string()
            } else if matches!(d, Decision::Tiling | Decision::TileRows) {
                "the fused kernels do not run here (per-op path, or shapes past the device)"
                    .to_string()
            } else {
                "one variant runs on this device".to_string()
            };
            decisions.push(skip(why));
            continue;
        }
        // Each new candidate: a compiling step, a settling one, reps - 1 more; the incumbent
        // reps steps; at the incumbent's pace (new variants compile: their first step counts
        // double).
        let per = inc.estimate().unwrap_or(0.0);
        let n_new = (candidates.len() - 1) as f64;
        let need = per * (n_new * (reps as f64 + 2.0) + reps as f64);
        if !clock.fits(need) {
            decisions.push(skip(format!(
                "not measured: about {:.0} s needed, {:.0} s of the budget left",
                need * 1e-3,
                (clock.budget - clock.elapsed()).max(0.0)
            )));
            continue;
        }
        let (winner, result) = race(
            &mut clock, gpu, d, inc, candidates, cfg, &bcfg, reps, &start,
        )?;
        inc = winner;
        decisions.push(result);
    }
    clock.say("done", format!("{}", inc.tuning));
    Ok(Measurement {
        tuning: inc.tuning,
        start,
        decisions,
        spent_s: clock.elapsed(),
        budget_s: clock.budget,
        reps,
        timing: if device_timing(gpu) {
            "gpu-timestamps"
        } else {
            "wall-clock"
        },
    })
}

/// Whether `key` (a `Display` key of `Tuning`) is forced by `o`.
fn is_forced(o: &TuningOverrides, key: &str) -> bool {
    match key {
        "lanes" => o.lanes.is_some(),
        "wide_blocks" => o.wide_blocks.is_some(),
        "conv_block" => o.conv_block.is_some(),
        "path" => o.path.is_some(),
        "tiling" => o.tiling.is_some(),
        "tile_rows" => o.tile_rows.is_some(),
        _ => false,
    }
}

/// One decision: the incumbent (`candidates[0]`, warm) against the others, round-robin, so a
/// change in the host's load falls on all of them alike. Gives back the winner, warm.
#[allow(clippy::too_many_arguments)]
fn race(
    clock: &mut Clock,
    gpu: &Gpu,
    d: Decision,
    inc: Runner,
    candidates: Vec<Tuning>,
    cfg: &Config,
    bcfg: &BehaviourConfig,
    reps: usize,
    start: &Tuning,
) -> Result<(Runner, DecisionResult)> {
    let name = d.name();
    let mut runners = vec![inc];
    runners[0].samples.clear();
    runners[0].note = None;
    let mut out_of_time = false;
    // Round 0: the incumbent's first sample; each new candidate compiles, settles, and takes
    // its first sample, or is dropped when far behind.
    let inc_est = runners[0].estimate().unwrap_or(0.0);
    if clock.fits(inc_est) {
        clock.say(name, format!("{} (current)", d.value(&runners[0].tuning)));
        let (s, _) = runners[0].step()?;
        runners[0].samples.push(s);
    } else {
        out_of_time = true;
    }
    let inc_ms = runners[0].median().unwrap_or(inc_est);
    for t in candidates.into_iter().skip(1) {
        if out_of_time {
            break;
        }
        let mut r = Runner::new(gpu, t, cfg, bcfg)?;
        let value = d.value(&r.tuning);
        for i in 0..=MAX_SETTLE_STEPS {
            // The first step compiles: allow it twice the incumbent's time.
            let expect = if i == 0 {
                2.0 * inc_ms
            } else {
                r.estimate().unwrap_or(inc_ms)
            };
            if !clock.fits(expect) {
                out_of_time = true;
                r.note = Some("out of budget during its warm-up".into());
                r.dropped = true;
                break;
            }
            clock.say(name, format!("{value} (warm-up)"));
            let (s, created) = r.step()?;
            if i > 0 && (!created || i == MAX_SETTLE_STEPS) {
                r.samples.push(s);
                break;
            }
        }
        if let Some(ms) = r.median() {
            if ms > DROP_AFTER_WARMUP * inc_ms {
                r.note = Some(format!(
                    "dropped after warm-up: {:.1}x the current choice",
                    ms / inc_ms
                ));
                r.dropped = true;
            }
        }
        runners.push(r);
    }
    // Rounds 1..reps: every live runner one more step; then the far-behind ones drop out.
    for _ in 1..reps {
        for r in runners.iter_mut().filter(|r| !r.dropped) {
            if out_of_time {
                break;
            }
            let expect = r.estimate().unwrap_or(inc_ms);
            if !clock.fits(expect) {
                out_of_time = true;
                break;
            }
            clock.say(
                name,
                format!(
                    "{} (step {} of {reps})",
                    d.value(&r.tuning),
                    r.samples.len() + 1
                ),
            );
            let (s, _) = r.step()?;
            r.samples.push(s);
        }
        if out_of_time {
            break;
        }
        let best = runners
            .iter()
            .filter(|r| !r.dropped)
            .filter_map(|r| r.median())
            .reduce(f64::min);
        if let Some(best) = best {
            for r in runners.iter_mut().filter(|r| !r.dropped) {
                if r.samples.len() >= 2 && r.fastest().is_some_and(|f| f > DROP_BEHIND * best) {
                    r.note = Some(format!(
                        "dropped: its fastest step {:.2}x the best median",
                        r.fastest().unwrap_or(0.0) / best
                    ));
                    r.dropped = true;
                }
            }
        }
    }
    // The winner: the fastest median among those still running; where the budget ran out,
    // only runners timed as often as the incumbent compete with it.
    let inc_n = runners[0].samples.len();
    let win = runners
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.dropped && !r.samples.is_empty())
        .filter(|(_, r)| !out_of_time || r.samples.len() >= inc_n)
        .min_by(|a, b| {
            let (x, y) = (
                a.1.median().unwrap_or(f64::MAX),
                b.1.median().unwrap_or(f64::MAX),
            );
            x.total_cmp(&y)
        })
        .map_or(0, |(i, _)| i);
    let within_noise = match (runners[win].median(), runners[0].median()) {
        (Some(w), Some(i)) => win != 0 && w > (1.0 - MIN_GAIN) * i,
        _ => false,
    };
    if within_noise {
        runners[win].note = Some(format!(
            "fastest, but within {:.0}% of the current choice: kept",
            MIN_GAIN * 100.0
        ));
    }
    let win = if within_noise { 0 } else { win };
    // Measured: the incumbent and at least one other were timed.
    let measured =
        !runners[0].samples.is_empty() && runners[1..].iter().any(|r| !r.samples.is_empty());
    let result = DecisionResult {
        decision: name.into(),
        choice: d.value(&runners[win].tuning),
        rule: d.value(start),
        measured,
        candidates: runners.iter().map(|r| r.result(d)).collect(),
        note: out_of_time.then(|| "the budget ran out during this decision".to_string()),
    };
    let winner = runners.swap_remove(win);
    Ok((winner, result))
}
