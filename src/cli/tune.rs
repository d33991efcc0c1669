//! `rssm tune`: time every choice between equivalent kernels on this device at a
//! configuration's shapes, print the candidates' times, and cache the fastest for `rssm train`,
//! `rssm dreamer` and `rssm bench` (see [`rssm::tune`]).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use rssm::gpu::GpuOptions;
use rssm::tune::{self, Cache, CacheKey, Entry, Measurement, Progress, Shapes, TuneOptions};
use rssm::{Error, Result};

use crate::cli::common::{flag, open_gpu, ModelChoice};

#[derive(clap::Args, Debug)]
pub struct TuneArgs {
    #[command(flatten)]
    pub model: ModelChoice,
    /// Override the configuration's batch size B.
    #[arg(long, value_parser = flag::at_least_one::<usize>())]
    pub batch: Option<usize>,
    /// Override the configuration's sequence length T.
    #[arg(long, value_parser = flag::at_least_one::<usize>())]
    pub seq_len: Option<usize>,
    /// Action size (default: the configuration's, else 1, as the built-in environments have).
    #[arg(long, value_parser = flag::at_least_one::<usize>())]
    pub action_dim: Option<usize>,
    /// Imagination horizon of the behaviour update.
    #[arg(long, default_value_t = 15, value_parser = flag::at_least_one::<usize>())]
    pub horizon: usize,
    /// Seconds for the whole measurement, compiles and warm-ups included; decisions that do
    /// not fit keep the device's rules.
    #[arg(long, default_value_t = 60.0, value_parser = flag::positive_f64)]
    pub budget: f64,
    /// Timed steps per candidate after its warm-up (the median counts).
    #[arg(long, default_value_t = 3, value_parser = flag::at_least_one::<usize>())]
    pub reps: usize,
    /// Print the cache entry as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(opts: &GpuOptions, args: TuneArgs) -> Result<()> {
    let gpu = open_gpu(opts)?;
    let mut cfg = args.model.resolve(&gpu)?;
    cfg.batch = args.batch.unwrap_or(cfg.batch);
    cfg.seq_len = args.seq_len.unwrap_or(cfg.seq_len);
    cfg.action_dim = args.action_dim.unwrap_or(if cfg.action_dim == 0 {
        1
    } else {
        cfg.action_dim
    });
    cfg.validate()?;
    let forced = tune::forced_overrides(opts)?;
    let shapes = Shapes::of(&cfg, args.horizon);
    let options = TuneOptions {
        budget: Duration::from_secs_f64(args.budget),
        reps: args.reps,
    };
    eprintln!(
        "tune: {shapes}, budget {:.0} s, {} steps per candidate",
        args.budget, args.reps
    );
    let pb = ProgressBar::new((args.budget * 10.0).ceil() as u64);
    pb.set_style(
        ProgressStyle::with_template("{bar:30} {msg}")
            .map_err(|e| Error::Invalid(e.to_string()))?,
    );
    let mut last_decision = "";
    let mut progress = |p: &Progress| {
        pb.set_position((p.elapsed_s * 10.0) as u64);
        let line = format!(
            "{:.0}/{:.0} s {}: {}",
            p.elapsed_s, p.budget_s, p.decision, p.what
        );
        if pb.is_hidden() {
            // Not a terminal: a line per decision instead of the bar.
            if p.decision != last_decision {
                eprintln!("tune: {line}");
            }
        } else {
            pb.set_message(line);
        }
        last_decision = p.decision;
    };
    let m = tune::measure(&gpu, &cfg, args.horizon, &forced, &options, &mut progress)?;
    pb.finish_and_clear();
    let entry = Entry::new(CacheKey::new(&gpu, &shapes), &m);
    let cache = Cache::from_env();
    let stored = cache.store(entry.clone());
    if args.json {
        let text = serde_json::to_string_pretty(&entry)
            .map_err(|e| Error::Invalid(format!("tune: JSON: {e}")))?;
        println!("{text}");
    } else {
        print_table(&entry, &m);
    }
    stored?;
    if let Some(path) = cache.file() {
        eprintln!("tune: cached in {}", path.display());
    }
    Ok(())
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"))
}

fn print_table(e: &Entry, m: &Measurement) {
    println!(
        "adapter: {} ({}, driver {}); rssm {}; shapes {}",
        e.key.adapter, e.key.backend, e.key.driver, e.key.version, e.key.shapes
    );
    println!(
        "measured in {:.1} s of a {:.0} s budget; {}, median of {} steps per candidate after a warm-up",
        m.spent_s, m.budget_s, m.timing, m.reps
    );
    println!();
    println!("| decision | candidate | ms / update (world model + behaviour) | world model ms | behaviour ms | steps | |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | --- |");
    for d in &m.decisions {
        if d.candidates.is_empty() {
            println!(
                "| {} | {} | | | | | {} |",
                d.decision,
                d.choice,
                d.note.as_deref().unwrap_or("")
            );
            continue;
        }
        for c in &d.candidates {
            let mut what = vec![];
            if c.value == d.choice {
                what.push(if d.measured { "chosen" } else { "kept" }.to_string());
            }
            if c.value == d.rule {
                what.push("rule".to_string());
            }
            if let Some(n) = &c.note {
                what.push(n.clone());
            }
            println!(
                "| {} | {} | {} | {} | {} | {} | {} |",
                d.decision,
                c.value,
                ms(c.ms),
                ms(c.train_ms),
                ms(c.behaviour_ms),
                c.samples,
                what.join("; ")
            );
        }
        if let Some(n) = &d.note {
            println!("| {} | | | | | | {n} |", d.decision);
        }
    }
    println!();
    println!("rules: {}", m.start);
    println!("tuned: {}", m.tuning);
}
