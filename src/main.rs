//! `ferrolite`: convert ONNX models to `.flb` bundles, run them, classify images and
//! inspect what a model computes and which kernels run it.

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
