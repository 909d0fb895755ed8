//! An image classifier session: a model whose first input takes a preprocessed image, fed
//! from image files. Shared by `classify` and `eval`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use ferrolite_runtime::exec::{Session, SessionOptions};
use ferrolite_runtime::meta::Preprocess;
use ferrolite_runtime::preprocess::{prepare_into, RgbImage};
use ferrolite_runtime::threads::Pool;
use ferrolite_runtime::Model;

use super::decode;

/// A session plus the preprocessing and input buffer its image input needs.
pub struct ImageModel {
    pub model: Arc<Model>,
    session: Session,
    preprocess: Preprocess,
    input_shape: Vec<usize>,
    input: Vec<f32>,
}

impl ImageModel {
    /// Prepare `model` for images, with its own preprocessing or, when it has none,
    /// `fallback` (e.g. a reference model converted straight from ONNX), on a session with
    /// `opts`.
    pub fn new(
        model: Arc<Model>,
        fallback: Option<&Preprocess>,
        opts: SessionOptions,
    ) -> Result<Self> {
        let preprocess = model
            .meta
            .inputs
            .first()
            .and_then(|i| i.preprocess.clone())
            .or_else(|| fallback.cloned())
            .with_context(|| {
                format!(
                    "model {} has no image preprocessing in its metadata: convert it with \
                     --mean/--std/--resize/--crop",
                    model.meta.model_name
                )
            })?;
        let session = super::open_session(model.clone(), opts)?;
        let shapes = session.input_shapes();
        if shapes.len() != 1 {
            bail!(
                "model {} has {} inputs; an image classifier has one",
                model.meta.model_name,
                shapes.len()
            );
        }
        let input_shape = shapes[0].clone();
        Ok(ImageModel {
            input: vec![0f32; input_shape.iter().product()],
            model,
            session,
            preprocess,
            input_shape,
        })
    }

    /// The session's thread pool (a second model run in turn with this one can share it).
    pub fn pool(&self) -> &Arc<Pool> {
        self.session.pool()
    }

    /// The preprocessing this model's images get.
    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    /// Decode and preprocess an image file into the input buffer.
    pub fn load_image(&mut self, path: &Path) -> Result<()> {
        let rgb = decode::decode(path)?;
        let view = RgbImage {
            width: rgb.width() as usize,
            height: rgb.height() as usize,
            pixels: rgb.as_raw(),
        };
        prepare_into(&view, &self.preprocess, &self.input_shape, &mut self.input)
            .with_context(|| format!("cannot preprocess {}", path.display()))
    }

    /// Run the model on the loaded image and return its first output (class scores).
    pub fn run(&mut self) -> Result<&[f32]> {
        self.session.run(&[&self.input])?;
        Ok(self.session.output(0))
    }
}
