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
    Ok(())
}
