//! `ferrolite`: convert ONNX models to `.flb` bundles, run them, classify images and
//! inspect what a model computes and which kernels run it.

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args) {
        let closed_pipe = e
            .chain()
            .filter_map(|c| c.downcast_ref::<std::io::Error>())
            .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe);
        if closed_pipe {
            // The reader of our output went away (`ferrolite inspect m.flb | head`): stop
            // quietly, as Unix tools do.
            std::process::exit(0);
        }
        if let Some(i) = e.downcast_ref::<cli::interrupt::Interrupted>() {
            eprintln!("{i}");
            std::process::exit(130);
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
