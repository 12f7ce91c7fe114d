#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    println!("swerl {}", env!("CARGO_PKG_VERSION"));
    println!(
        "backends: cpu (rayon, {} threads)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    cuda_report();
    Ok(())
}

/// Driver and NVRTC versions and each device, or the one line saying why CUDA is unusable here.
#[cfg(feature = "cuda")]
fn cuda_report() {
    for line in runtime::cuda::report() {
        println!("{line}");
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda_report() {
    println!("cuda: not in this build (rebuild with `--features cuda`)");
}
