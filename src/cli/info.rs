//! `rssm info`: which adapter we would run on, and what it can do.

use rssm::gpu::{Gpu, GpuOptions};

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
    println!("{}", gpu.report());
    println!("tuning       {}", gpu.tuning());
    for why in gpu.tuning().explain(gpu.report()) {
        println!("             {why}");
    }
    Ok(())
}
