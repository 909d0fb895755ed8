//! Ferrolite converter (host side): imports ONNX through tract, lowers it to the Ferrolite
//! IR, applies the graph fusions and produces a [`Model`] ready to be written as a bundle.

pub mod calibrate;
pub mod fuse;
pub mod half_precision;
pub mod import;
pub mod int8;
pub mod onnx_check;
pub mod pipeline;
pub mod qdq;
pub mod report;
pub mod source_counts;
pub mod tract_guard;
pub mod tract_pool;
pub mod work;

use std::path::Path;

use anyhow::{Context, Result};
use ferrolite_runtime::meta::{
    InputSpec, Metadata, OutputSpec, Precision, Preprocess, COUNTS_RECORD,
};
use ferrolite_runtime::summary::{summarize, Counts};
use ferrolite_runtime::{Model, Weights};

/// What the user tells the converter beyond the ONNX file.
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// Shape of the first input, for models with symbolic dimensions.
    pub input_shape: Option<Vec<usize>>,
    /// Image preprocessing stored for the first input.
    pub preprocess: Option<Preprocess>,
    /// Class names in output order.
    pub labels: Vec<String>,
    /// Model name; defaults to the file stem.
    pub model_name: Option<String>,
    /// Storage precision of the weights ([`Precision::Int8`] is refused here: int8 needs
    /// calibration data, see [`int8::quantize_model`]).
    pub precision: Precision,
    /// Skip the graph fusions: keep the operators as the ONNX file has them (BatchNorm as
    /// its own scale and shift, activations separate), as `ferrolite summary` reports them.
    pub unfused: bool,
}

/// Convert an ONNX file into a Ferrolite model held in memory, with weights stored at
/// `opts.precision`. A QDQ model (already quantized) is refused: [`qdq::import_qdq`]
/// imports it to int8.
pub fn convert_onnx(path: &Path, opts: &ConvertOptions) -> Result<Model> {
    if opts.precision == Precision::Int8 {
        anyhow::bail!("int8 conversion needs calibration: convert to fp32, calibrate, quantize");
    }
    let (model, given) = convert_keeping_qdq(path, opts)?;
    if given.iter().any(Option::is_some) {
        anyhow::bail!(
            "{} is a quantized (QDQ) ONNX model: it imports to int8 as it is \
             (ferrolite_quantize::qdq::import_qdq; `ferrolite convert` does so by itself)",
            path.display()
        );
    }
    Ok(model)
}

/// [`convert_onnx`] that also returns, per tensor id of the converted graph, the u8
/// parameters a QDQ model's QuantizeLinear / DequantizeLinear pairs give the tensor (the
/// pairs themselves are gone from the graph).
pub(crate) fn convert_keeping_qdq(
    path: &Path,
    opts: &ConvertOptions,
) -> Result<(Model, Vec<Option<ferrolite_runtime::ir::Quant>>)> {
    let (typed, onnx_nodes, params) = import::load_onnx(path, opts.input_shape.as_deref())?;
    let mut work = tract_guard::guarded(|| import::lower(&typed, &onnx_nodes))
        .and_then(|lowered| lowered)
        .with_context(|| format!("cannot convert {}", path.display()))?;
    if !opts.unfused {
        fuse::fuse(&mut work);
    }
    if opts.precision == Precision::Fp16 {
        half_precision::store_weights_as_f16(&mut work);
    }
    let (mut graph, weights) = work.finish();
    let given = graph
        .tensors
        .iter_mut()
        .map(|t| t.quant.take())
        .collect::<Vec<_>>();
    let name = opts.model_name.clone().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into())
    });
    let inputs = graph
        .inputs
        .iter()
        .enumerate()
        .map(|(i, &t)| InputSpec {
            name: graph.tensors[t].name.clone(),
            shape: graph.tensors[t].shape.clone(),
            preprocess: if i == 0 {
                opts.preprocess.clone()
            } else {
                None
            },
        })
        .collect();
    let outputs = graph
        .outputs
        .iter()
        .map(|&t| OutputSpec {
            name: graph.tensors[t].name.clone(),
            shape: graph.tensors[t].shape.clone(),
        })
        .collect();
    // MACs do not change under the fusions; parameters are counted on the file, as tract
    // folds some BatchNorms before anything here sees them.
    let counts = Counts {
        params,
        macs: summarize(&graph).macs,
    };
    let mut records = std::collections::BTreeMap::new();
    records.insert(COUNTS_RECORD.to_string(), serde_json::to_value(counts)?);
    let meta = Metadata {
        model_name: name,
        producer: format!("ferrolite {}", env!("CARGO_PKG_VERSION")),
        precision: opts.precision,
        inputs,
        outputs,
        labels: opts.labels.clone(),
        records,
    };
    let model = Model {
        meta,
        graph,
        weights: Weights::Owned(weights),
    };
    ferrolite_runtime::validate::validate_model(&model)
        .with_context(|| format!("converted graph of {} failed validation", path.display()))?;
    Ok((model, given))
}

/// The contents of a labels file: class names in output order and, for a TSV of three or
/// more columns (`index<TAB>wnid<TAB>name`), their class ids (WordNet ids).
#[derive(Debug, Clone, Default)]
pub struct Labels {
    /// One name per output (the last column of a TSV).
    pub names: Vec<String>,
    /// The second column of a three-column TSV, one per name; empty for other files.
    pub ids: Vec<String>,
}

/// Read a labels file: one name per line, or a TSV whose last column is the name and whose
/// second, when there are three or more, the class id (as in imagenet_classes.tsv).
pub fn read_labels(path: &Path) -> Result<Labels> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read labels file {}", path.display()))?;
    let mut labels = Labels::default();
    let mut has_ids = true;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        has_ids &= fields.len() >= 3;
        if fields.len() > 1 && fields[0].trim().parse::<usize>().is_err() {
            continue; // a TSV header line
        }
        labels
            .names
            .push(fields[fields.len() - 1].trim().to_string());
        if has_ids {
            labels.ids.push(fields[1].trim().to_string());
        }
    }
    if !has_ids {
        labels.ids.clear();
    }
    Ok(labels)
}

/// The ONNX writer (it lives in the zoo crate), re-exported for tests that generate graphs.
pub use ferrolite_models::onnx as onnx_builder;

/// tract, re-exported so host tools (the CLI benchmark) can run it as a peer.
pub use tract_onnx;
