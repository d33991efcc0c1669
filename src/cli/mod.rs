//! The command-line interface: one module per command.

pub mod bench;
pub mod common;
pub mod dreamer;
pub mod evaluate;
pub mod imagine;
pub mod info;
pub mod picture;
pub mod plot;
pub mod train;
pub mod tune;

use clap::{Parser, Subcommand};

/// rssm: train Recurrent State-Space Models (Dreamer world models) on any GPU through wgpu.
#[derive(Parser, Debug)]
#[command(name = "rssm", version, about, long_about = None)]
pub struct Cli {
    /// Use the adapter whose name contains this text (case-insensitive); also WGPU_ADAPTER_NAME.
    /// WGPU_BACKEND=vulkan|metal|dx12|gl restricts the backends searched.
    #[arg(long, global = true)]
    pub adapter: Option<String>,
    /// Cap one storage binding at this many bytes (below the adapter's limit), so that ops run
    /// over slices as large batches do on devices with small limits.
    #[arg(long, global = true)]
    pub max_binding: Option<u64>,
    /// Force kernel choices over the device's rules and RSSM_TUNING: comma-separated key=value
    /// (lanes=on|off, wide_blocks=on|off, conv_block=8|16, path=fused|per-op, tiling=gpu|cpu,
    /// tile_rows=1..8, subnormals=flush|keep). `rssm info` prints the choices and why. They win over measured
    /// ones.
    #[arg(long, global = true, value_parser = parse_tuning)]
    pub tuning: Option<rssm::gpu::TuningOverrides>,
    /// Run as on another class of device: its limits (each capped at the adapter's), features,
    /// subgroup widths and device type, so the engine chooses as there (webgpu, downlevel,
    /// apple-m, nvidia, amd-rdna, intel-igpu, mobile); also RSSM_DEVICE_PROFILE. `rssm info
    /// --device-profile NAME` prints the profile, the limits in force and the choices.
    #[arg(long, global = true, value_name = "NAME", value_parser = parse_device_profile)]
    pub device_profile: Option<rssm::gpu::DeviceProfile>,
    /// How train, dreamer and bench get their kernel choices: auto (the default: measured ones
    /// cached by `rssm tune` for the configuration, else the device's rules), off (the rules)
    /// or force (measure now, about a minute, and cache). Also RSSM_TUNE.
    #[arg(long, global = true, value_parser = parse_tune)]
    pub tune: Option<rssm::tune::TuneMode>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the chosen adapter, its backend, type, limits and features.
    Info(info::InfoArgs),
    /// Train a world model from pixels (the main job).
    Train(train::TrainArgs),
    /// Compute the loss and every gradient on one batch (for cross-framework checks).
    Evaluate(evaluate::EvaluateArgs),
    /// Time world-model train steps and observe-only forwards for the presets.
    Bench(bench::BenchArgs),
    /// The full Dreamer loop: world model + actor-critic learned in imagination.
    Dreamer(dreamer::DreamerArgs),
    /// Decode a long imagined rollout from a real start into a PNG strip.
    Imagine(imagine::ImagineArgs),
    /// Time the equivalent kernels on this device at a configuration's shapes and cache the
    /// fastest (used by train, dreamer and bench).
    Tune(tune::TuneArgs),
}

fn parse_tune(s: &str) -> Result<rssm::tune::TuneMode, String> {
    rssm::tune::TuneMode::parse(s).map_err(|e| e.to_string())
}

fn parse_tuning(s: &str) -> Result<rssm::gpu::TuningOverrides, String> {
    rssm::gpu::TuningOverrides::parse(s).map_err(|e| e.to_string())
}

fn parse_device_profile(s: &str) -> Result<rssm::gpu::DeviceProfile, String> {
    rssm::gpu::DeviceProfile::named(s).map_err(|e| e.to_string())
}

/// Run the parsed command.
pub fn run(cli: Cli) -> rssm::Result<()> {
    let gpu_opts = rssm::gpu::GpuOptions {
        adapter: cli.adapter.clone(),
        max_binding: cli.max_binding,
        tuning: cli.tuning.unwrap_or_default(),
        profile: cli.device_profile.clone(),
    };
    match cli.command {
        Command::Info(args) => info::run(&gpu_opts, args),
        Command::Train(args) => train::run(&gpu_opts, cli.tune, args),
        Command::Evaluate(args) => evaluate::run(&gpu_opts, args),
        Command::Bench(args) => bench::run(&gpu_opts, cli.tune, args),
        Command::Dreamer(args) => dreamer::run(&gpu_opts, cli.tune, args),
        Command::Imagine(args) => imagine::run(&gpu_opts, args),
        Command::Tune(args) => tune::run(&gpu_opts, args),
    }
}
