//! An image classifier over a [`Session`]: the bundle's own preprocessing (resize, crop,
//! mean/std, layout) → run → softmax → top-k. The CLI's `classify` and `eval`, the C API's
//! `ferrolite_classify_rgb` and the Python package all go through it, so one image gives the
//! same scores everywhere.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::exec::{Session, SessionOptions};
use crate::meta::Preprocess;
use crate::preprocess::{prepare_into, RgbImage};
use crate::weights::Model;

/// One class of a classification: its output index, its label and its probability.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Class {
    /// Index in the model's output.
    pub index: usize,
    /// The bundle's label for it, or `class N` when the bundle has none.
    pub label: String,
    /// Probability (softmax of the scores unless the model outputs probabilities already).
    pub score: f32,
}

/// A session whose single input takes an image, with the buffer that input is prepared in.
#[derive(Debug)]
pub struct Classifier {
    session: Session,
    preprocess: Preprocess,
    input_shape: Vec<usize>,
    input: Vec<f32>,
}

impl Classifier {
    /// A classifier for `model`, using the preprocessing stored in its bundle.
    pub fn new(model: Arc<Model>, opts: SessionOptions) -> Result<Self> {
        Self::with_fallback(model, None, opts)
    }

    /// Like [`Classifier::new`], with `fallback` as the preprocessing when the bundle has
    /// none (a model converted straight from ONNX, say).
    pub fn with_fallback(
        model: Arc<Model>,
        fallback: Option<&Preprocess>,
        opts: SessionOptions,
    ) -> Result<Self> {
        let preprocess = image_preprocess(&model, fallback)?;
        let session = Session::with_options(model, opts)?;
        let input_shape = session.input_shapes().swap_remove(0);
        Ok(Classifier {
            input: vec![0f32; input_shape.iter().product()],
            session,
            preprocess,
            input_shape,
        })
    }

    /// The session it runs (threads, ISA, plan).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The model it runs.
    pub fn model(&self) -> &Arc<Model> {
        self.session.model()
    }

    /// The preprocessing its images get.
    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    /// Preprocess `image` into the input buffer (the next [`Classifier::scores`] runs on it).
    pub fn set_image(&mut self, image: &RgbImage) -> Result<()> {
        prepare_into(image, &self.preprocess, &self.input_shape, &mut self.input)
    }

    /// The preprocessed input of the last [`Classifier::set_image`], logical NCHW.
    pub fn input(&self) -> &[f32] {
        &self.input
    }

    /// Run on the image set last and return the model's first output (class scores).
    pub fn scores(&mut self) -> Result<&[f32]> {
        self.session.run(&[&self.input])?;
        self.session
            .output(0)
            .ok_or_else(|| Error::Unsupported("the model has no output".into()))
    }

    /// Classify `image`: the `top` most probable classes, most probable first.
    pub fn classify(&mut self, image: &RgbImage, top: usize) -> Result<Vec<Class>> {
        self.set_image(image)?;
        let model = Arc::clone(self.model());
        Ok(rank(self.scores()?, &model.meta.labels, top))
    }

    /// Decode an image file and classify it (see [`crate::image::decode_file`]).
    #[cfg(feature = "decode")]
    pub fn classify_file(&mut self, path: &std::path::Path, top: usize) -> Result<Vec<Class>> {
        let image = crate::image::decode_file(path)?;
        self.classify(&image.view(), top)
    }
}

/// The preprocessing images for `model` get: its bundle's own, else `fallback`. Fails
/// unless the model has exactly one input and there is a preprocessing to apply.
pub fn image_preprocess(model: &Model, fallback: Option<&Preprocess>) -> Result<Preprocess> {
    let name = &model.meta.model_name;
    let preprocess = model
        .meta
        .inputs
        .first()
        .and_then(|i| i.preprocess.clone())
        .or_else(|| fallback.cloned())
        .ok_or_else(|| {
            Error::Unsupported(format!(
                "model {name} has no image preprocessing in its metadata: convert it with \
                 --mean/--std/--resize/--crop"
            ))
        })?;
    // Validated bundles have as many metadata inputs as graph inputs.
    if model.meta.inputs.len() != 1 {
        return Err(Error::Unsupported(format!(
            "model {name} has {} inputs; an image classifier has one",
            model.meta.inputs.len()
        )));
    }
    Ok(preprocess)
}

/// The `top` most probable classes of raw `scores` (softmax unless they are probabilities
/// already), named from `labels`.
pub fn rank(scores: &[f32], labels: &[String], top: usize) -> Vec<Class> {
    top_classes(&probabilities(scores), labels, top)
}

/// Turn raw scores into probabilities (softmax) unless they already are.
pub fn probabilities(scores: &[f32]) -> Vec<f32> {
    let sum: f32 = scores.iter().sum();
    if scores.iter().all(|v| (0.0..=1.0).contains(v)) && (sum - 1.0).abs() < 1e-3 {
        return scores.to_vec();
    }
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = scores.iter().map(|v| (v - max).exp()).collect();
    let total: f32 = exps.iter().sum();
    exps.iter().map(|e| e / total).collect()
}

/// Indices of the `k` largest values, largest first (ties: the lower index first).
pub fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// The `k` most probable classes of `probs`, named from `labels`.
pub fn top_classes(probs: &[f32], labels: &[String], k: usize) -> Vec<Class> {
    top_k(probs, k)
        .into_iter()
        .map(|i| Class {
            index: i,
            label: labels
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("class {i}")),
            score: probs[i],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_of_hand_computed_scores() {
        let p = probabilities(&[0.0, (2f32).ln(), 0.0]);
        assert!(
            (p[0] - 0.25).abs() < 1e-6 && (p[1] - 0.5).abs() < 1e-6,
            "{p:?}"
        );
        let already = [0.2f32, 0.7, 0.1];
        assert_eq!(probabilities(&already), already.to_vec());
    }

    #[test]
    fn top_k_orders_by_value_then_index() {
        assert_eq!(top_k(&[0.1, 0.5, 0.5, 0.9], 3), vec![3, 1, 2]);
        let labels = vec!["a".to_string()];
        let c = top_classes(&[0.3, 0.7], &labels, 2);
        assert_eq!((c[0].index, c[0].label.as_str()), (1, "class 1"));
        assert_eq!((c[1].index, c[1].label.as_str()), (0, "a"));
    }
}
