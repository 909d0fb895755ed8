//! The high-level API on the shipped EfficientNet-Lite0 bundle: `Model::open` /
//! `from_bytes`, input and output descriptions, outputs by index and name, the classifier
//! against the same steps assembled by hand, and every error path as a typed error.
#![cfg(feature = "decode")]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferrolite_runtime::classifier::probabilities;
use ferrolite_runtime::image::{decode_bytes, decode_file};
use ferrolite_runtime::preprocess::prepare;
use ferrolite_runtime::{Classifier, DType, Error, Model, Session, SessionOptions};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

fn bundle() -> PathBuf {
    repo("models/efficientnet_lite0.flb")
}

fn panda() -> PathBuf {
    repo("models/samples/n02510455_7939_giant_panda.jpg")
}

#[test]
fn describes_inputs_and_outputs_and_finds_outputs_by_name() {
    let model = Arc::new(Model::open(bundle()).unwrap());
    let mut s = Session::with_options(model.clone(), SessionOptions::single_thread()).unwrap();
    let inputs = s.inputs();
    assert_eq!(inputs.len(), 1);
    assert_eq!(inputs[0].name, model.meta.inputs[0].name);
    assert_eq!(inputs[0].shape, vec![1, 3, 224, 224]);
    let outputs = s.outputs();
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].name, model.meta.outputs[0].name);
    assert_eq!(outputs[0].shape, vec![1, 1000]);
    assert_eq!(outputs[0].dtype, DType::F32);
    let x: Vec<f32> = (0..3 * 224 * 224)
        .map(|i| ((i % 251) as f32 - 125.0) / 64.0)
        .collect();
    s.run(&[&x]).unwrap();
    let by_index = s.output(0).unwrap().to_vec();
    assert_eq!(by_index.len(), 1000);
    assert_eq!(s.output_named(&outputs[0].name), Some(&by_index[..]));
    assert!(s.output(1).is_none());
    assert!(s.output_named("no such output").is_none());
}

#[test]
fn from_bytes_gives_the_same_outputs_as_the_mapped_file() {
    let bytes = std::fs::read(bundle()).unwrap();
    let a = Arc::new(Model::open(bundle()).unwrap());
    let b = Arc::new(Model::from_bytes(&bytes).unwrap());
    let x: Vec<f32> = (0..3 * 224 * 224)
        .map(|i| (i % 17) as f32 / 8.0 - 1.0)
        .collect();
    let mut outs = Vec::new();
    for m in [a, b] {
        let mut s = Session::with_options(m, SessionOptions::single_thread()).unwrap();
        s.run(&[&x]).unwrap();
        outs.push(s.output(0).expect("output").to_vec());
    }
    assert_eq!(outs[0], outs[1]);
}

#[test]
fn the_classifier_equals_its_steps_assembled_by_hand() {
    let model = Arc::new(Model::open(bundle()).unwrap());
    let mut c = Classifier::new(model.clone(), SessionOptions::default().threads(2)).unwrap();
    let top = c.classify_file(&panda(), 5).unwrap();
    // By hand: decode, the bundle's preprocessing, one run, softmax.
    let image = decode_file(&panda()).unwrap();
    let spec = &model.meta.inputs[0];
    let x = prepare(
        &image.view(),
        spec.preprocess.as_ref().unwrap(),
        &spec.shape,
    )
    .unwrap();
    let mut s = Session::with_options(model.clone(), SessionOptions::single_thread()).unwrap();
    s.run(&[&x]).unwrap();
    let probs = probabilities(s.output(0).expect("output"));
    assert_eq!(top[0].index, 388, "{top:?}");
    assert!(top[0].label.starts_with("giant panda"), "{top:?}");
    for class in &top {
        assert_eq!(class.score.to_bits(), probs[class.index].to_bits());
        assert_eq!(class.label, model.meta.labels[class.index]);
    }
    // PIL's pixels (libjpeg) through this bundle give 95.87 % (the CLI's figure).
    #[cfg(feature = "libjpeg")]
    assert!((top[0].score - 0.9587).abs() < 5e-5, "{}", top[0].score);
    assert!(top.windows(2).all(|w| w[0].score >= w[1].score));
}

#[test]
fn bad_inputs_are_typed_errors() {
    let missing = Model::open("/nonexistent/model.flb").unwrap_err();
    assert!(matches!(missing, Error::Io { .. }), "{missing}");
    assert!(
        missing.to_string().contains("/nonexistent/model.flb"),
        "{missing}"
    );
    let garbage = Model::from_bytes(b"not a bundle at all").unwrap_err();
    assert!(matches!(garbage, Error::Bundle(_)), "{garbage}");
    let no_image = decode_file(Path::new("/nonexistent/photo.jpg")).unwrap_err();
    assert!(matches!(no_image, Error::Io { .. }), "{no_image}");
    let not_image = decode_bytes(b"plain text, not pixels", "notes.txt").unwrap_err();
    assert!(matches!(not_image, Error::Image(_)), "{not_image}");
    assert!(not_image.to_string().contains("notes.txt"), "{not_image}");
    // A JPEG cut short after its header, from several threads at once: an error each time.
    let jpeg = std::fs::read(panda()).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for cut in [4usize, 200, 600] {
                    let r = decode_bytes(&jpeg[..cut], "cut.jpg");
                    assert!(r.is_err() || cut > 400, "{cut}: {r:?}");
                }
            });
        }
    });
    let model = Arc::new(Model::open(bundle()).unwrap());
    let mut s = Session::with_options(model, SessionOptions::single_thread()).unwrap();
    let short = vec![0f32; 10];
    let e = s.run(&[&short]).unwrap_err();
    assert!(matches!(e, Error::Input(_)), "{e}");
}
