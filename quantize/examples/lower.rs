//! Print the Ferrolite IR a model converts to: `cargo run -p ferrolite-quantize --example lower -- MODEL.onnx`.

fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).expect("usage: lower MODEL.onnx");
    let model = ferrolite_quantize::convert_onnx(path.as_ref(), &Default::default())?;
    let mut counts = std::collections::BTreeMap::new();
    for n in &model.graph.nodes {
        *counts.entry(n.op.name()).or_insert(0) += 1;
        println!(
            "{:?} {:?} -> {:?}",
            n.name, n.op, model.graph.tensors[n.outputs[0]].shape
        );
    }
    println!("{counts:?}");
    Ok(())
}
