//! What int8 cost: top-1 agreement with the fp32 model and the signal-to-quantization-noise
//! ratio of every quantized activation, measured on sample inputs.

use std::collections::HashMap;

use anyhow::{bail, Result};
use ferrolite_runtime::ir::Quant;
use ferrolite_runtime::Model;

use crate::calibrate::Observer;

/// SQNR of one activation tensor of the int8 model against its fp32 original.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSqnr {
    /// The node producing the tensor.
    pub node: String,
    /// `10 log10(Σ ref² / Σ (ref - int8)²)` over all inputs, in dB.
    pub sqnr_db: f64,
}

/// Result of [`compare`].
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub images: usize,
    /// Inputs on which both models pick the same top-1 class of output 0.
    pub agreement: usize,
    /// In int8 execution order.
    pub layers: Vec<LayerSqnr>,
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |b, (i, &x)| if x > b.1 { (i, x) } else { b },
        )
        .0
}

/// Run `fp32` and its quantized version `int8` on `inputs` and compare them; `progress` is
/// called once per input and model, and an error from it stops the comparison.
pub fn compare(
    fp32: &Model,
    int8: &Model,
    inputs: &[Vec<f32>],
    mut progress: impl FnMut() -> Result<()>,
) -> Result<Comparison> {
    if inputs.is_empty() {
        bail!("the comparison needs at least one input");
    }
    let mut reference = Observer::new(fp32)?;
    let mut quantized = Observer::new(int8)?;
    let by_name: HashMap<&str, usize> = reference
        .ids
        .iter()
        .enumerate()
        .map(|(k, &t)| (fp32.graph.tensors[t].name.as_str(), k))
        .collect();
    let out_ref = reference
        .ids
        .iter()
        .position(|t| fp32.graph.outputs.first() == Some(t));
    let out_q = quantized
        .ids
        .iter()
        .position(|t| int8.graph.outputs.first() == Some(t));
    // (int8 observer slot, fp32 observer slot, zero point, scale, producing node)
    let mut pairs = Vec::new();
    for (k, &t) in quantized.ids.iter().enumerate() {
        let tensor = &int8.graph.tensors[t];
        let Some(node) = int8.graph.nodes.iter().find(|n| n.outputs.contains(&t)) else {
            continue;
        };
        if matches!(
            node.op,
            ferrolite_runtime::Op::Quantize | ferrolite_runtime::Op::Dequantize
        ) {
            continue;
        }
        let original = tensor.name.strip_suffix(".q8").unwrap_or(&tensor.name);
        let Some(&r) = by_name.get(original) else {
            continue;
        };
        let (zp, scale) = match tensor.quant {
            Some(Quant::PerTensor { scale, zero_point }) => (zero_point as f32, scale),
            None => (0.0, 1.0),
            _ => continue,
        };
        pairs.push((k, r, zp, scale, node.name.clone()));
    }
    let mut energy = vec![(0f64, 0f64); pairs.len()];
    let mut agreement = 0;
    for input in inputs {
        reference.run(input)?;
        quantized.run(input)?;
        for ((k, r, zp, scale, _), e) in pairs.iter().zip(&mut energy) {
            for (&q, &f) in quantized.values(*k)?.iter().zip(reference.values(*r)?) {
                let d = ((q - zp) * scale - f) as f64;
                e.0 += (f as f64) * (f as f64);
                e.1 += d * d;
            }
        }
        if let (Some(a), Some(b)) = (out_ref, out_q) {
            agreement += (argmax(reference.values(a)?) == argmax(quantized.values(b)?)) as usize;
        }
        progress()?;
    }
    let layers = pairs
        .into_iter()
        .zip(energy)
        .map(|((.., node), (signal, noise))| LayerSqnr {
            node,
            sqnr_db: if noise == 0.0 {
                f64::INFINITY
            } else {
                10.0 * (signal / noise).log10()
            },
        })
        .collect();
    Ok(Comparison {
        images: inputs.len(),
        agreement,
        layers,
    })
}
