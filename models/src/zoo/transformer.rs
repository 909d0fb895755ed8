//! The two vision transformers of the zoo: ViT-Ti/16 (attention over 16×16 patches) and
//! MLP-Mixer-S/16 (token-mixing and channel-mixing MLPs over the same patches).
//!
//! Both have a fixed resolution: the token count is `(R/16)²`, and the learned position
//! embedding of ViT and the token-mixing weights of Mixer are sized by it, so another
//! resolution is a different set of parameters rather than the same network on a bigger
//! image (the papers fine-tune at a new resolution by interpolating those weights).

use super::{Act, Arch, Config, ConvOpts, Net, Value};

pub(super) const ARCHS: [Arch; 2] = [
    Arch {
        name: "vit_tiny_16",
        paper: "Dosovitskiy et al. 2020, An Image is Worth 16x16 Words (arXiv:2010.11929); \
                Ti size from Touvron et al. 2020, DeiT (arXiv:2012.12877)",
        resolution: 224,
        has_width: false,
        min_resolution: None,
        build: |n, x, c| vit(n, x, c, &VitSize::TINY),
    },
    Arch {
        name: "mixer_s16",
        paper: "Tolstikhin et al. 2021, MLP-Mixer (arXiv:2105.01601)",
        resolution: 224,
        has_width: false,
        min_resolution: None,
        build: |n, x, c| mixer(n, x, c, &MixerSize::SMALL),
    },
];

/// Patch side of both models.
const PATCH: usize = 16;

/// Split the image into non-overlapping `PATCH×PATCH` patches, embed each linearly (a
/// strided convolution with bias) and lay them out as tokens `[N, (H/16)·(W/16), dim]`.
fn patch_embed(net: &mut Net, x: &Value, dim: usize) -> Value {
    let opts = ConvOpts {
        stride: PATCH,
        pads: Some([0; 4]),
        bias: true,
        ..ConvOpts::default()
    };
    let p = net.conv(x, dim, PATCH, opts);
    let [n, c, h, w] = [p.shape[0], p.shape[1], p.shape[2], p.shape[3]];
    let flat = net.reshape(&p, &[n, c, h * w]);
    net.transpose(&flat, &[0, 2, 1])
}

/// Two dense layers with a GELU between them, on the last axis.
fn mlp(net: &mut Net, x: &Value, hidden: usize) -> Value {
    let out = *x.shape.last().unwrap();
    let h = net.linear(x, hidden);
    let h = net.act(&h, Act::Gelu);
    net.linear(&h, out)
}

/// Dimensions of a ViT.
struct VitSize {
    dim: usize,
    depth: usize,
    heads: usize,
    mlp: usize,
}

impl VitSize {
    /// ViT-Ti (DeiT-Ti): 192 wide, 12 blocks of 3 heads, MLP ratio 4.
    const TINY: VitSize = VitSize {
        dim: 192,
        depth: 12,
        heads: 3,
        mlp: 768,
    };
}

/// Multi-head self-attention on tokens `[N, T, D]`: one dense layer makes queries, keys and
/// values, each head attends with `softmax(q·kᵀ/√d)`, and a dense layer projects the heads'
/// concatenated outputs.
fn attention(net: &mut Net, x: &Value, heads: usize) -> Value {
    let [n, t, d] = [x.shape[0], x.shape[1], x.shape[2]];
    let head_dim = d / heads;
    let qkv = net.linear(x, 3 * d);
    let split_heads = |net: &mut Net, i: usize, perm: &[usize]| {
        let part = net.slice(&qkv, 2, i * d, (i + 1) * d);
        let per_head = net.reshape(&part, &[n, t, heads, head_dim]);
        net.transpose(&per_head, perm)
    };
    // Queries and values as [N, heads, T, d]; keys already transposed to [N, heads, d, T].
    let q = split_heads(net, 0, &[0, 2, 1, 3]);
    let k_t = split_heads(net, 1, &[0, 2, 3, 1]);
    let v = split_heads(net, 2, &[0, 2, 1, 3]);
    let scores = net.matmul(&q, &k_t);
    let scores = net.scale(&scores, 1.0 / (head_dim as f32).sqrt());
    let weights = net.softmax(&scores, 3);
    let mixed = net.matmul(&weights, &v);
    let merged = net.transpose(&mixed, &[0, 2, 1, 3]);
    let merged = net.reshape(&merged, &[n, t, d]);
    net.linear(&merged, d)
}

/// ViT: patch tokens plus a class token, position embedding, pre-norm transformer blocks,
/// final LayerNorm, classifier on the class token.
fn vit(net: &mut Net, x: Value, c: &Config, s: &VitSize) -> Value {
    let tokens = patch_embed(net, &x, s.dim);
    let n = tokens.shape[0];
    let tokens = net.prepend_param(&tokens, &[n, 1, s.dim], 1);
    let mut h = net.add_param(&tokens);
    for _ in 0..s.depth {
        let a = net.layer_norm(&h);
        let a = attention(net, &a, s.heads);
        h = net.add(&h, &a);
        let m = net.layer_norm(&h);
        let m = mlp(net, &m, s.mlp);
        h = net.add(&h, &m);
    }
    let h = net.layer_norm(&h);
    let class_token = net.slice(&h, 1, 0, 1);
    let class_token = net.reshape(&class_token, &[n, s.dim]);
    net.linear(&class_token, c.classes)
}

/// Dimensions of an MLP-Mixer.
struct MixerSize {
    dim: usize,
    depth: usize,
    token_mlp: usize,
    channel_mlp: usize,
}

impl MixerSize {
    /// Mixer-S: 512 wide, 8 layers, token MLP 256, channel MLP 2048.
    const SMALL: MixerSize = MixerSize {
        dim: 512,
        depth: 8,
        token_mlp: 256,
        channel_mlp: 2048,
    };
}

/// MLP-Mixer: patch tokens, layers of (LayerNorm, MLP across tokens) and (LayerNorm, MLP
/// across channels) each with a skip connection, final LayerNorm, mean over tokens, classifier.
fn mixer(net: &mut Net, x: Value, c: &Config, s: &MixerSize) -> Value {
    let mut h = patch_embed(net, &x, s.dim);
    for _ in 0..s.depth {
        let t = net.layer_norm(&h);
        let t = net.transpose(&t, &[0, 2, 1]);
        let t = mlp(net, &t, s.token_mlp);
        let t = net.transpose(&t, &[0, 2, 1]);
        h = net.add(&h, &t);
        let m = net.layer_norm(&h);
        let m = mlp(net, &m, s.channel_mlp);
        h = net.add(&h, &m);
    }
    let h = net.layer_norm(&h);
    let pooled = net.reduce_mean(&h, &[1]);
    let n = pooled.shape[0];
    let pooled = net.reshape(&pooled, &[n, s.dim]);
    net.linear(&pooled, c.classes)
}
