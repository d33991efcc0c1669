//! `rssm bench`: the engine's workloads on the current adapter — a world-model update, an
//! observe-only forward, a behaviour update, a long imagination and a 512^3 matmul — with, per
//! steady step: milliseconds (GPU timestamps where a GPU has them, else wall clock),
//! the host's milliseconds to record the step and to encode + submit it, dispatches, bind groups
//! and buffers created, and GFLOP/s against the step's matmul + conv FLOPs
//! ([`rssm::agent::flops`]). `--json` prints the same as one JSON document (read by
//! `benches/pytorch/compare.py`).

use std::time::Instant;

use serde::Serialize;

use rssm::agent::flops::{self, Flops};
use rssm::agent::{imagine, Behaviour, BehaviourConfig, Policy, Starts};
use rssm::gpu::profile::by_kernel;
use rssm::gpu::{Gpu, GpuOptions};
use rssm::model::{Config, RssmPath, Trainer, WorldModel};
use rssm::ops::{self, matmul::MatmulSpec, Act};
use rssm::tensor::{Tape, Tensor};
use rssm::tune::TuneMode;
use rssm::{Error, Result};

use crate::cli::common::{flag, open_gpu, tuned_gpu};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Presets to measure (default: small and dreamer).
    #[arg(long, value_delimiter = ',')]
    pub presets: Option<Vec<String>>,
    /// Workloads: train, observe, behaviour, imagine, matmul (default: all).
    #[arg(long, value_delimiter = ',')]
    pub workloads: Option<Vec<String>>,
    /// Timed repetitions of each workload after one warm-up.
    #[arg(long, default_value_t = 3, value_parser = flag::at_least_one::<usize>())]
    pub reps: usize,
    /// Action size of the synthetic batch.
    #[arg(long, default_value_t = 1, value_parser = flag::at_least_one::<usize>())]
    pub action_dim: usize,
    /// Override the presets' batch size B.
    #[arg(long, value_parser = flag::at_least_one::<usize>())]
    pub batch: Option<usize>,
    /// Override the presets' sequence length T.
    #[arg(long, value_parser = flag::at_least_one::<usize>())]
    pub seq_len: Option<usize>,
    /// Imagination horizon of the behaviour update (from every one of the B*T posterior states).
    #[arg(long, default_value_t = 15, value_parser = flag::at_least_one::<usize>())]
    pub horizon: usize,
    /// Start states of the long imagination.
    #[arg(long, default_value_t = 16)]
    pub imagine_starts: usize,
    /// Steps of the long imagination.
    #[arg(long, default_value_t = 1000)]
    pub imagine_steps: usize,
    /// Print one JSON document on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Skip the second pass that times each step with GPU timestamps (`ms` is then wall clock).
    #[arg(long)]
    pub wall_only: bool,
    /// Also run one step of each workload with every dispatch timed on its own (timestamp
    /// queries) and report the kernels that take the most device time.
    #[arg(long)]
    pub profile: bool,
}

const WORKLOADS: [&str; 5] = ["train", "observe", "behaviour", "imagine", "matmul"];

/// One measured workload, per steady step (the mean of `reps` after a warm-up).
#[derive(Clone, Debug, Serialize)]
pub struct Measured {
    /// `train`, `observe`, `behaviour`, `imagine` or `matmul`.
    pub workload: String,
    /// Preset name (`-` for the matmul).
    pub preset: String,
    /// The workload's size in words, e.g. `B=16 T=50`.
    pub size: String,
    /// Milliseconds per step: `gpu_ms` where measured on a GPU, else `wall_ms`.
    pub ms: f64,
    /// `gpu-timestamps` or `wall-clock`: what `ms` is.
    pub timing: &'static str,
    /// The fastest and the slowest of the `reps` steps, on the same clock as `ms`: how much
    /// the steps varied (a CPU driver shares the host with everything else on it).
    pub ms_min: f64,
    pub ms_max: f64,
    /// Wall-clock milliseconds per step: record, submit, wait, read the results back.
    pub wall_ms: f64,
    /// Device milliseconds between the start of the step's first and the end of its last
    /// compute pass (timestamp queries), when the adapter has them and the step is one submit.
    pub gpu_ms: Option<f64>,
    /// Host milliseconds to record the step (tape, kernels, parameters), not waiting.
    pub host_record_ms: f64,
    /// Host milliseconds of `gpu.flush()`: bind groups, encoding and the submit, not waiting.
    pub host_submit_ms: f64,
    pub dispatches: u64,
    pub bind_groups: u64,
    pub buffers_created: u64,
    pub submits: u64,
    /// Matmul + conv GFLOP of one step (forward + backward), counted from the shapes.
    pub gflop: f64,
    /// `gflop / ms`.
    pub gflops: f64,
    /// With `--profile`: device time per kernel over one step, longest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernels: Option<Vec<KernelShare>>,
    /// With `--profile`: the step's slowest dispatches, longest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slowest: Option<Vec<SlowDispatch>>,
}

/// One dispatch of a profiled step.
#[derive(Clone, Debug, Serialize)]
pub struct SlowDispatch {
    pub kernel: String,
    /// Its kernel's override constants, `NAME=value` comma-separated.
    pub variant: String,
    /// Its place in the step's order of dispatches.
    pub index: usize,
    pub groups: [u32; 3],
    pub ms: f64,
}

/// Slowest dispatches listed per profiled step.
const SLOWEST: usize = 16;

/// One kernel's share of a profiled step.
#[derive(Clone, Debug, Serialize)]
pub struct KernelShare {
    /// `family::entry`.
    pub kernel: String,
    pub dispatches: usize,
    pub ms: f64,
    /// Fraction of the step's summed dispatch time.
    pub share: f64,
}

/// The kernel choices a preset's workloads ran with.
#[derive(Debug, Serialize)]
pub struct PresetTuning {
    pub preset: String,
    pub tuning: String,
}

/// The whole run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub adapter: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub timestamps: bool,
    /// Bytes one storage binding may hold in this run.
    pub max_binding: u64,
    /// How the RSSM runs over time, per preset (see [`rssm_path`]).
    pub rssm_path: String,
    /// The matmul kernel for operands whose contiguous axes are multiples of 4.
    pub matmul_kernel: String,
    /// The device's kernel choices (`gpu::Tuning`, in the `RSSM_TUNING` syntax): its rules and
    /// the forced choices (the matmul workload's).
    pub tuning: String,
    /// Each preset's: measured ones where `rssm tune` cached some for its shapes (see
    /// `RSSM_TUNE`), else the device's.
    pub tunings: Vec<PresetTuning>,
    pub reps: usize,
    pub results: Vec<Measured>,
}

/// Which RSSM implementation the world model runs for this batch on this device (the fused
/// kernels or the per-op path), and why when it is the per-op one: the one place the benchmark
/// names it.
fn rssm_path(model: &WorldModel, gpu: &Gpu, cfg: &Config) -> String {
    let say = |(path, why): (RssmPath, String)| {
        if why.is_empty() {
            path.to_string()
        } else {
            format!("{path} ({why})")
        }
    };
    let n = cfg.batch * cfg.seq_len;
    format!(
        "observe {}, behaviour imagination {}",
        say(model.observe_path(gpu, cfg.batch, cfg.seq_len)),
        say(model.imagine_path(gpu, n, 15, true))
    )
}

/// Warm-up steps before timing, at most: pipelines compile in the first, and the pool's
/// buffers and with them the cached bind groups settle within a few more (they can cycle
/// through a few assignments first). Warm-up ends after two consecutive steps that create
/// neither a buffer nor a bind group.
const MAX_WARMUP_STEPS: usize = 12;

/// Time `reps` steady steps of a workload after the warm-up. `record` records a step without
/// submitting it; `finish` submits what is left, waits and reads the results back.
fn time_steps<P>(
    gpu: &Gpu,
    reps: usize,
    timestamps: bool,
    profile: bool,
    mut record: impl FnMut() -> Result<P>,
    mut finish: impl FnMut(P) -> Result<()>,
) -> Result<Timing> {
    let mut clean = 0;
    for _ in 0..MAX_WARMUP_STEPS {
        let before = gpu.stats();
        let warm = record()?;
        finish(warm)?;
        let after = gpu.stats();
        let settled = after.bind_groups_created == before.bind_groups_created
            && after.buffers_created == before.buffers_created;
        clean = if settled { clean + 1 } else { 0 };
        if clean == 2 {
            break;
        }
    }
    let s0 = gpu.stats();
    let (mut rec_s, mut submit_s, mut wall_s) = (0.0, 0.0, 0.0);
    let mut wall_range = Range::default();
    for _ in 0..reps {
        let t0 = Instant::now();
        let pending = record()?;
        let t1 = Instant::now();
        gpu.flush();
        let t2 = Instant::now();
        finish(pending)?;
        rec_s += (t1 - t0).as_secs_f64();
        submit_s += (t2 - t1).as_secs_f64();
        let step = t0.elapsed().as_secs_f64();
        wall_s += step;
        wall_range.add(step * 1e3);
    }
    let s1 = gpu.stats();
    let per = |a: u64, b: u64| (b - a) / reps as u64;
    let submits = per(s0.submits, s1.submits);
    // Timestamps bracket one submit: only a step that is one submit (plus its readback) is
    // timed on the device.
    let mut gpu_ms = None;
    let mut gpu_range = Range::default();
    if timestamps && gpu.report().timestamps && submits <= 2 {
        let mut total = 0.0;
        let mut all = true;
        for _ in 0..reps {
            let (pending, secs) = gpu.gpu_time(&mut record)?;
            finish(pending?)?;
            match secs {
                Some(s) => {
                    total += s;
                    gpu_range.add(s * 1e3);
                }
                None => all = false,
            }
        }
        if all {
            gpu_ms = Some(total * 1e3 / reps as f64);
        }
    }
    let (kernels, slowest) = if profile {
        let ((), times) = gpu.profile(|| finish(record()?))?;
        let total: f64 = times.iter().map(|t| t.secs).sum();
        let mut order: Vec<usize> = (0..times.len()).collect();
        order.sort_by(|a, b| times[*b].secs.total_cmp(&times[*a].secs));
        let slowest = order
            .into_iter()
            .take(SLOWEST)
            .map(|i| SlowDispatch {
                kernel: times[i].kernel.clone(),
                variant: times[i].variant.clone(),
                index: i,
                groups: times[i].groups,
                ms: times[i].secs * 1e3,
            })
            .collect();
        let kernels = by_kernel(&times)
            .into_iter()
            .map(|k| KernelShare {
                kernel: k.kernel,
                dispatches: k.dispatches,
                ms: k.secs * 1e3,
                share: k.secs / total.max(f64::MIN_POSITIVE),
            })
            .collect();
        (Some(kernels), Some(slowest))
    } else {
        (None, None)
    };
    let n = reps as f64;
    Ok(Timing {
        kernels,
        slowest,
        wall_ms: wall_s * 1e3 / n,
        wall_range,
        gpu_ms,
        gpu_range,
        host_record_ms: rec_s * 1e3 / n,
        host_submit_ms: submit_s * 1e3 / n,
        dispatches: per(s0.dispatches, s1.dispatches),
        bind_groups: per(s0.bind_groups_created, s1.bind_groups_created),
        buffers_created: per(s0.buffers_created, s1.buffers_created),
        submits,
    })
}

/// The fastest and the slowest of a series of step times, in ms.
#[derive(Clone, Copy)]
struct Range {
    min: f64,
    max: f64,
}

impl Default for Range {
    fn default() -> Range {
        Range {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl Range {
    fn add(&mut self, ms: f64) {
        self.min = self.min.min(ms);
        self.max = self.max.max(ms);
    }
}

struct Timing {
    kernels: Option<Vec<KernelShare>>,
    slowest: Option<Vec<SlowDispatch>>,
    wall_ms: f64,
    wall_range: Range,
    gpu_ms: Option<f64>,
    gpu_range: Range,
    host_record_ms: f64,
    host_submit_ms: f64,
    dispatches: u64,
    bind_groups: u64,
    buffers_created: u64,
    submits: u64,
}

fn measured(
    gpu: &Gpu,
    workload: &str,
    preset: &str,
    size: String,
    t: Timing,
    f: Flops,
) -> Measured {
    // On a CPU driver the "device" is the host: its timestamps (lavapipe's ran above the wall
    // clock of the same step) say nothing the wall clock does not, so `ms` is the wall clock.
    let (ms, range, timing) = match t.gpu_ms {
        Some(g) if !gpu.report().is_cpu() => (g, t.gpu_range, "gpu-timestamps"),
        _ => (t.wall_ms, t.wall_range, "wall-clock"),
    };
    let gflop = f.total() * 1e-9;
    Measured {
        workload: workload.to_string(),
        preset: preset.to_string(),
        size,
        ms,
        timing,
        ms_min: range.min,
        ms_max: range.max,
        wall_ms: t.wall_ms,
        gpu_ms: t.gpu_ms,
        host_record_ms: t.host_record_ms,
        host_submit_ms: t.host_submit_ms,
        dispatches: t.dispatches,
        bind_groups: t.bind_groups,
        buffers_created: t.buffers_created,
        submits: t.submits,
        gflop,
        gflops: gflop / (ms * 1e-3),
        kernels: t.kernels,
        slowest: t.slowest,
    }
}

/// Read one value of `t` back: submits what is pending and waits for it.
fn wait_on(t: &Tensor) -> Result<()> {
    let one = Tensor::empty(t.gpu(), &[1])?;
    t.gpu().copy(t.buf(), 0, one.buf(), 0, 1);
    one.to_vec().map(|_| ())
}

/// The first `rows` rows of `t [N, d]`, copied.
fn first_rows(t: &Tensor, rows: usize) -> Result<Tensor> {
    let d = t.last_dim();
    if rows > t.rows() {
        return Err(Error::Invalid(format!(
            "bench: {rows} imagination starts, but the batch has only {} states",
            t.rows()
        )));
    }
    let out = Tensor::empty(t.gpu(), &[rows, d])?;
    t.gpu().copy(t.buf(), 0, out.buf(), 0, rows * d);
    Ok(out)
}

fn measure_preset(
    gpu: &Gpu,
    name: &str,
    cfg: &Config,
    args: &BenchArgs,
    wanted: &dyn Fn(&str) -> bool,
    out: &mut Vec<Measured>,
) -> Result<String> {
    let reps = args.reps.max(1);
    let batch = rssm::tune::synthetic_batch(gpu, cfg)?;
    let mut tr = Trainer::new(gpu, cfg)?;
    let path = rssm_path(&tr.model, gpu, cfg);
    let bt = format!("B={} T={}", cfg.batch, cfg.seq_len);
    if wanted("train") {
        let t = time_steps(
            gpu,
            reps,
            !args.wall_only,
            args.profile,
            || tr.record_step(&batch),
            |p| p.read().map(|_| ()),
        )?;
        out.push(measured(
            gpu,
            "train",
            name,
            bt.clone(),
            t,
            flops::world_model_update(cfg),
        ));
        report_progress(out);
    }
    if tr.last_posterior.is_none() && (wanted("behaviour") || wanted("imagine")) {
        // The behaviour and imagination starts come from a step's posterior states.
        tr.train_step(&batch)?;
    }
    let model = &tr.model;
    if wanted("observe") {
        // Encoder + RSSM over the sequence: no heads, no backward.
        let record = || -> Result<Tensor> {
            let t = Tape::no_grad(gpu);
            let p = model.params.bind_frozen(&t);
            let n = cfg.batch * cfg.seq_len;
            let obs = t.constant(&batch.obs);
            let images = ops::reshape(&t, obs, &[n, 3, 64, 64])?;
            let embed = model.encode(&t, &p, images)?;
            let embed = ops::reshape(&t, embed, &[cfg.batch, cfg.seq_len, cfg.embed()])?;
            let action = t.constant(&batch.action);
            let eps = Tensor::zeros(gpu, &[cfg.batch, cfg.seq_len, cfg.stoch])?;
            let o = model.observe(&t, &p, embed, action, &eps)?;
            Ok(t.value(o.deter))
        };
        let t = time_steps(gpu, reps, !args.wall_only, args.profile, record, |h| {
            wait_on(&h)
        })?;
        out.push(measured(
            gpu,
            "observe",
            name,
            bt.clone(),
            t,
            flops::observe_forward(cfg),
        ));
        report_progress(out);
    }
    let Some((h, s)) = tr.last_posterior.clone() else {
        return Ok(path);
    };
    let bcfg = BehaviourConfig {
        horizon: args.horizon,
        ..BehaviourConfig::default()
    };
    let mut beh = Behaviour::new(gpu, cfg, bcfg)?;
    if wanted("behaviour") {
        let starts = Starts::new(&h, &s)?;
        let n = starts.len();
        let t = time_steps(
            gpu,
            reps,
            !args.wall_only,
            args.profile,
            || beh.record_update(model, &starts),
            |p| p.read().map(|_| ()),
        )?;
        out.push(measured(
            gpu,
            "behaviour",
            name,
            format!("{n} starts, H={}", args.horizon),
            t,
            flops::behaviour_update(cfg, n, args.horizon),
        ));
        report_progress(out);
    }
    if wanted("imagine") {
        let starts = Starts::new(&h, &s)?;
        let k = args.imagine_starts;
        let (sh, ss) = (first_rows(&starts.h, k)?, first_rows(&starts.s, k)?);
        let steps = args.imagine_steps;
        let record = || -> Result<Tensor> {
            let t = Tape::no_grad(gpu);
            let wm_p = model.params.bind_frozen(&t);
            let actor_p = beh.actor.bind_frozen(&t);
            let policy = Policy {
                actor: &beh.actor,
                params: &actor_p,
                deterministic: false,
            };
            let (h0, s0) = (t.constant(&sh), t.constant(&ss));
            let im = imagine(&t, model, &wm_p, policy, h0, s0, steps, cfg.seed)?;
            Ok(t.value(im.rewards))
        };
        let t = time_steps(gpu, reps, !args.wall_only, args.profile, record, |r| {
            wait_on(&r)
        })?;
        out.push(measured(
            gpu,
            "imagine",
            name,
            format!("{k} starts x {steps} steps"),
            t,
            flops::imagination(cfg, k, steps),
        ));
        report_progress(out);
    }
    Ok(path)
}

/// The 512^3 matmul (the vec4 kernel), ten per step so the submit cost is shared.
fn measure_matmul(gpu: &Gpu, reps: usize, timestamps: bool) -> Result<Measured> {
    const N: usize = 512;
    const PER_STEP: usize = 10;
    let a = Tensor::full(gpu, &[N, N], 0.01)?;
    let b = Tensor::full(gpu, &[N, N], 0.02)?;
    let c = Tensor::empty(gpu, &[N, N])?;
    let spec = MatmulSpec {
        m: N,
        n: N,
        k: N,
        trans_a: false,
        trans_b: false,
        act: Act::None,
        acc: false,
    };
    let record = || -> Result<()> {
        for _ in 0..PER_STEP {
            ops::matmul::matmul_into(&a, &b, None, &c, spec)?;
        }
        Ok(())
    };
    let t = time_steps(gpu, reps, timestamps, false, record, |_| wait_on(&c))?;
    let f = Flops {
        forward: PER_STEP as f64 * flops::matmul(N, N, N),
        backward: 0.0,
    };
    Ok(measured(
        gpu,
        "matmul",
        "-",
        format!("{PER_STEP} x 512^3"),
        t,
        f,
    ))
}

fn report_progress(out: &[Measured]) {
    if let Some(m) = out.last() {
        eprintln!(
            "bench: {} {} ({}): {:.1} ms ({})",
            m.workload, m.preset, m.size, m.ms, m.timing
        );
    }
}

fn print_table(r: &Report) {
    println!(
        "adapter: {} ({}, {}); timestamps: {}; RSSM path: {}; matmul: {}; max storage binding {} MiB; {} reps",
        r.adapter,
        r.backend,
        r.device_type,
        if r.timestamps { "yes" } else { "no" },
        r.rssm_path,
        r.matmul_kernel,
        r.max_binding >> 20,
        r.reps
    );
    println!("tuning: {}", r.tuning);
    for t in r.tunings.iter().filter(|t| t.tuning != r.tuning) {
        println!("tuning of {}: {}", t.preset, t.tuning);
    }
    println!();
    println!("| workload | preset | size | ms / step | min-max ms | timing | wall ms | host record ms | host submit ms | dispatches | bind groups | buffers created | GFLOP | GFLOP/s |");
    println!(
        "| --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for m in &r.results {
        println!(
            "| {} | {} | {} | {:.1} | {:.1}-{:.1} | {} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {:.2} | {:.1} |",
            m.workload,
            m.preset,
            m.size,
            m.ms,
            m.ms_min,
            m.ms_max,
            m.timing,
            m.wall_ms,
            m.host_record_ms,
            m.host_submit_ms,
            m.dispatches,
            m.bind_groups,
            m.buffers_created,
            m.gflop,
            m.gflops
        );
    }
    for m in r.results.iter().filter(|m| m.kernels.is_some()) {
        println!();
        println!(
            "{} {} ({}): device time per kernel, one profiled step",
            m.workload, m.preset, m.size
        );
        println!();
        println!("| kernel | dispatches | ms | share |");
        println!("| --- | ---: | ---: | ---: |");
        for k in m.kernels.iter().flatten().take(12) {
            println!(
                "| {} | {} | {:.1} | {:.1}% |",
                k.kernel,
                k.dispatches,
                k.ms,
                k.share * 100.0
            );
        }
        println!();
        println!("| slowest dispatches | overrides | # in step | workgroups | ms |");
        println!("| --- | --- | ---: | --- | ---: |");
        for d in m.slowest.iter().flatten() {
            println!(
                "| {} | {} | {} | {}x{}x{} | {:.1} |",
                d.kernel, d.variant, d.index, d.groups[0], d.groups[1], d.groups[2], d.ms
            );
        }
    }
}

pub fn run(opts: &GpuOptions, tune: Option<TuneMode>, args: BenchArgs) -> Result<()> {
    let gpu = open_gpu(opts)?;
    let presets = args
        .presets
        .clone()
        .unwrap_or_else(|| vec!["small".into(), "dreamer".into()]);
    let workloads = args
        .workloads
        .clone()
        .unwrap_or_else(|| WORKLOADS.iter().map(|s| s.to_string()).collect());
    if let Some(bad) = workloads.iter().find(|w| !WORKLOADS.contains(&w.as_str())) {
        return Err(Error::Invalid(format!(
            "unknown workload '{bad}'; available: {}",
            WORKLOADS.join(", ")
        )));
    }
    let wanted = |w: &str| workloads.iter().any(|x| x == w);
    let mut results = Vec::new();
    let mut paths = Vec::new();
    let mut tunings = Vec::new();
    let per_preset = WORKLOADS[..4].iter().any(|w| wanted(w));
    for name in presets.iter().filter(|_| per_preset) {
        let mut cfg = Config::preset(name)?;
        cfg.action_dim = args.action_dim;
        cfg.batch = args.batch.unwrap_or(cfg.batch);
        cfg.seq_len = args.seq_len.unwrap_or(cfg.seq_len);
        cfg.validate()?;
        // The kernel choices measured for this preset's shapes (`rssm tune`), if any.
        let g = tuned_gpu(&gpu, opts, tune, &cfg, args.horizon)?;
        tunings.push(PresetTuning {
            preset: name.clone(),
            tuning: g.tuning().to_string(),
        });
        let path = measure_preset(&g, name, &cfg, &args, &wanted, &mut results)?;
        paths.push(format!("{name}: {path}"));
        gpu.trim();
    }
    if wanted("matmul") {
        results.push(measure_matmul(&gpu, args.reps.max(1), !args.wall_only)?);
        report_progress(&results);
    }
    let r = gpu.report();
    let report = Report {
        adapter: r.name.clone(),
        backend: r.backend.clone(),
        device_type: r.device_type.clone(),
        driver: r.driver.clone(),
        timestamps: r.timestamps,
        max_binding: gpu.binding_limit(),
        rssm_path: if paths.is_empty() {
            "-".to_string()
        } else {
            paths.join(", ")
        },
        matmul_kernel: rssm::ops::matmul::kernel_choice(&gpu),
        tuning: gpu.tuning().to_string(),
        tunings,
        reps: args.reps.max(1),
        results,
    };
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::Invalid(format!("bench: JSON: {e}")))?;
        println!("{text}");
    } else {
        print_table(&report);
    }
    Ok(())
}
