//! `rssm info`: which adapter we would run on, what it can do, its kernel choices and the ones
//! measured for it (`rssm tune`).

use rssm::gpu::{Gpu, GpuOptions};
use rssm::tune::{Cache, Entry};

#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// Also list every adapter found, not only the chosen one.
    #[arg(long)]
    pub all: bool,
}

pub fn run(opts: &GpuOptions, args: InfoArgs) -> rssm::Result<()> {
    if args.all {
        for a in Gpu::list_adapters() {
            println!("found        {a}");
        }
    }
    let gpu = Gpu::new(opts)?;
    if let Some(name) = &gpu.report().profile {
        let p = rssm::gpu::DeviceProfile::named(name)?;
        println!("device profile {}", p.describe());
    }
    println!("{}", gpu.report());
    println!("tuning       {}", gpu.tuning());
    for why in gpu.tuning().explain(gpu.report()) {
        println!("             {why}");
    }
    println!("matmul       {}", rssm::ops::matmul::kernel_choice(&gpu));
    for gap in rssm::ops::kernels::device_gaps(&gpu) {
        let what = if gap.contains("cannot run here") {
            "cannot"
        } else {
            "note  "
        };
        println!("{what}       {gap}");
    }
    print_cached(&gpu);
    Ok(())
}

/// The measured tunings cached for this device and engine, each with its candidates' times;
/// a count of the others (other adapters, drivers or versions).
fn print_cached(gpu: &Gpu) {
    let cache = Cache::from_env();
    let Some(file) = cache.file() else {
        println!("tuned        no cache folder (set RSSM_CACHE_DIR, XDG_CACHE_HOME or HOME)");
        return;
    };
    let (entries, notes) = cache.entries();
    for n in notes {
        eprintln!("note: {n}");
    }
    let r = gpu.report();
    let ours = |e: &Entry| {
        e.key.adapter == r.name
            && e.key.backend == r.backend
            && e.key.driver == r.driver
            && e.key.version == env!("CARGO_PKG_VERSION")
    };
    let (mine, others): (Vec<&Entry>, Vec<&Entry>) = entries.iter().partition(|e| ours(e));
    if mine.is_empty() {
        println!(
            "tuned        nothing measured on this device ({}); `rssm tune` measures",
            file.display()
        );
    }
    for e in mine {
        println!(
            "tuned        {} (measured {}, {:.0} s, {}):",
            e.key.shapes,
            e.when(),
            e.spent_s,
            e.timing
        );
        for d in &e.decisions {
            if !d.measured {
                let why = d.note.as_deref().unwrap_or("not measured");
                println!("             {}: {} ({why})", d.decision, d.choice);
                continue;
            }
            let times: Vec<String> = d
                .candidates
                .iter()
                .map(|c| match c.ms {
                    Some(ms) => format!("{} {ms:.1} ms", c.value),
                    None => format!("{} -", c.value),
                })
                .collect();
            println!(
                "             {}: {} (measured: {})",
                d.decision,
                d.choice,
                times.join(", ")
            );
        }
    }
    if !others.is_empty() {
        println!(
            "             and {} tuning(s) of other adapters, drivers or versions in {}",
            others.len(),
            file.display()
        );
    }
}
