//! Ferrolite models: the architecture zoo built in code, a small ONNX writer for it, and the
//! default bundle shipped with the CLI.

pub mod onnx;
pub mod zoo;

/// The default EfficientNet-Lite0 bundle (ImageNet-1k classes, preprocessing included),
/// when the crate is built with the `default-model` feature.
pub fn default_bundle() -> Option<&'static [u8]> {
    #[cfg(feature = "default-model")]
    {
        Some(include_bytes!("../efficientnet_lite0.flb"))
    }
    #[cfg(not(feature = "default-model"))]
    {
        None
    }
}
