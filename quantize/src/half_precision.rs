//! fp16 bundles: the weight tensors of convolutions and fully connected layers are stored as
//! IEEE half floats, halving the bundle. The runtime widens them to f32 once, when it prepacks
//! the weights at load, so inference runs the fp32 kernels at fp32 speed.
//!
//! Weights with a fan-in of at most 9 stay f32: a 3x3 depthwise filter sums only 9 products
//! per output, so the rounding of each weight is not averaged out. On EfficientNet-Lite0
//! over the 300 shared images, rounding them too flipped 2 top-1 answers of the fp32 model
//! (keeping the 3-channel stem in f32 instead did not help, keeping them did: 300/300), and
//! keeping them costs 0.3 % of the bundle. Biases and other constants stay f32 as well.

use ferrolite_runtime::ir::{DType, Op};

use crate::work::WorkGraph;

/// Largest fan-in (inputs per output: channels per group x kernel area) kept in f32.
const MAX_F32_FAN_IN: usize = 9;

/// Mark as f16 every constant that is only ever read as the weight (input 1) of a Conv2d or
/// FullyConnected node and has a fan-in above [`MAX_F32_FAN_IN`]; [`WorkGraph::finish`] then
/// writes it as half floats.
pub fn store_weights_as_f16(g: &mut WorkGraph) {
    let mut weight_only = vec![None::<bool>; g.tensors.len()];
    for n in g.nodes.iter().flatten() {
        let takes_weight = matches!(n.op, Op::Conv2d { .. } | Op::FullyConnected { .. });
        for (i, &t) in n.inputs.iter().enumerate() {
            if let Some(flag) = weight_only.get_mut(t) {
                let as_weight = takes_weight && i == 1;
                *flag = Some(flag.unwrap_or(true) && as_weight);
            }
        }
    }
    for &t in &g.outputs {
        if let Some(flag) = weight_only.get_mut(t) {
            *flag = Some(false);
        }
    }
    for (t, flag) in weight_only.into_iter().enumerate() {
        let tensor = &g.tensors[t];
        // Weights are [outputs, fan-in...]: OIHW for convolutions, [out, in] for FC.
        let fan_in: usize = tensor.shape.iter().skip(1).product();
        if flag == Some(true)
            && fan_in > MAX_F32_FAN_IN
            && tensor.dtype == DType::F32
            && g.consts.contains_key(&t)
        {
            g.tensors[t].dtype = DType::F16;
        }
    }
}
