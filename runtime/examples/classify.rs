//! Classify image files with a bundle, the way `ferrolite classify` does:
//!
//!   cargo run --release -p ferrolite-runtime --features libjpeg --example classify -- \
//!       models/efficientnet_lite0.flb models/samples/n02510455_7939_giant_panda.jpg

use std::path::Path;
use std::sync::Arc;

use ferrolite_runtime::{Classifier, Model, SessionOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((bundle, images)) = args.split_first().filter(|(_, rest)| !rest.is_empty()) else {
        return Err("usage: classify MODEL.flb IMAGE...".into());
    };
    let model = Arc::new(Model::open(bundle)?);
    let mut classifier = Classifier::new(model, SessionOptions::default())?;
    for image in images {
        println!("{image}");
        for class in classifier.classify_file(Path::new(image), 5)? {
            println!(
                "  {:6.2}%  {:4}  {}",
                class.score * 100.0,
                class.index,
                class.label
            );
        }
    }
    Ok(())
}
