//! Round trips through the bundle format and the structural checks of header / section table.

mod bundle_common;

use bundle_common::{scratch_dir, small_model};
use ferrolite_runtime::bundle::{self, format};
use ferrolite_runtime::{Error, Weights};

fn bytes_of(m: &ferrolite_runtime::Model) -> Vec<u8> {
    bundle::to_bytes(&m.meta, &m.graph, m.weights.bytes()).unwrap()
}

#[test]
fn to_bytes_from_bytes_round_trip() {
    let m = small_model(1);
    let b = bytes_of(&m);
    assert!(bundle::looks_like_bundle(&b[..16]));
    let back = bundle::from_bytes(&b).unwrap();
    assert_eq!(back.meta, m.meta);
    assert_eq!(back.graph, m.graph);
    assert_eq!(back.weights.bytes(), m.weights.bytes());
    assert!(matches!(back.weights, Weights::Owned(_)));
    // Deterministic encoding.
    assert_eq!(bytes_of(&back), b);
}

#[test]
fn from_bytes_accepts_unaligned_input() {
    let m = small_model(2);
    let b = bytes_of(&m);
    let mut shifted = vec![0u8; b.len() + 1];
    shifted[1..].copy_from_slice(&b);
    let back = bundle::from_bytes(&shifted[1..]).unwrap();
    assert_eq!(back.weights.bytes(), m.weights.bytes());
    let w = back.graph.tensors[1].clone();
    assert_eq!(back.weights.f32s(&w).unwrap(), m.weights.f32s(&w).unwrap());
}

#[test]
fn save_load_round_trip_maps_weights_aligned() {
    let m = small_model(3);
    let dir = scratch_dir("rt");
    let path = dir.join("tiny.flb");
    bundle::save(&m, &path).unwrap();
    let back = bundle::load(&path).unwrap();
    assert_eq!(back.meta, m.meta);
    assert_eq!(back.graph, m.graph);
    assert_eq!(back.weights.bytes(), m.weights.bytes());
    let Weights::Mapped { offset, len, .. } = &back.weights else {
        panic!("load must map the weights, got {:?}", back.weights);
    };
    assert_eq!(*offset % 64, 0);
    assert_eq!(*len, m.weights.bytes().len());
    assert_eq!(back.weights.bytes().as_ptr() as usize % 64, 0);
    // Every constant is usable in place.
    for t in back.graph.tensors.iter().filter(|t| t.is_const()) {
        assert_eq!(back.weights.f32s(t).unwrap(), m.weights.f32s(t).unwrap());
    }
    // Nothing but the bundle is left in the directory (the temp file was renamed).
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("tiny.flb")]);
    // The map is Send + Sync: move the model to another thread.
    let w0 = std::thread::spawn(move || back.weights.bytes()[0])
        .join()
        .unwrap();
    assert_eq!(w0, m.weights.bytes()[0]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn failed_save_keeps_existing_bundle() {
    let good = small_model(4);
    let dir = scratch_dir("atomic");
    let path = dir.join("m.flb");
    bundle::save(&good, &path).unwrap();
    let before = std::fs::read(&path).unwrap();
    let mut bad = small_model(5);
    bad.graph.nodes[0].inputs[0] = 99;
    let e = bundle::save(&bad, &path).unwrap_err();
    assert!(e.to_string().contains("#99"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // Saving into a missing directory fails cleanly with the path.
    let e = bundle::save(&good, &dir.join("no/such/dir/m.flb")).unwrap_err();
    assert!(
        matches!(e, Error::Io { .. }) && e.to_string().contains("no/such/dir"),
        "{e}"
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn load_reports_missing_empty_directory_and_garbage() {
    let dir = scratch_dir("errs");
    let missing = dir.join("missing.flb");
    let e = bundle::load(&missing).unwrap_err();
    assert!(
        matches!(e, Error::Io { .. }) && e.to_string().contains("missing.flb"),
        "{e}"
    );

    let empty = dir.join("empty.flb");
    std::fs::write(&empty, b"").unwrap();
    let e = bundle::load(&empty).unwrap_err();
    assert!(
        e.to_string().contains("empty.flb") && e.to_string().contains("empty"),
        "{e}"
    );

    let e = bundle::load(&dir).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");

    let text = dir.join("text.flb");
    std::fs::write(&text, vec![b'x'; 200]).unwrap();
    let e = bundle::load(&text).unwrap_err();
    assert!(
        e.to_string().contains("bad magic") && e.to_string().contains("text.flb"),
        "{e}"
    );

    let short = dir.join("short.flb");
    std::fs::write(&short, format::MAGIC).unwrap();
    let e = bundle::load(&short).unwrap_err();
    assert!(
        e.to_string().contains("shorter than the 64-byte header"),
        "{e}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn header_layout_is_as_documented() {
    let m = small_model(6);
    let b = bytes_of(&m);
    assert_eq!(&b[0..8], b"\x89FLB\r\n\x1a\n");
    assert_eq!(u16::from_le_bytes([b[8], b[9]]), 1);
    assert_eq!(u32::from_le_bytes(b[16..20].try_into().unwrap()), 64);
    assert_eq!(u32::from_le_bytes(b[20..24].try_into().unwrap()), 3);
    assert_eq!(
        u64::from_le_bytes(b[24..32].try_into().unwrap()),
        b.len() as u64
    );
    assert_eq!(u64::from_le_bytes(b[32..40].try_into().unwrap()), 64);
    assert_eq!(
        u32::from_le_bytes(b[60..64].try_into().unwrap()),
        crc32fast::hash(&b[..60])
    );
    // Entries: METADATA, GRAPH, WEIGHTS; weights at a 64-aligned offset.
    let entry = |i: usize| &b[64 + 32 * i..][..32];
    let kinds: Vec<u32> = (0..3)
        .map(|i| u32::from_le_bytes(entry(i)[0..4].try_into().unwrap()))
        .collect();
    assert_eq!(kinds, [1, 2, 3]);
    let woff = u64::from_le_bytes(entry(2)[8..16].try_into().unwrap()) as usize;
    let wlen = u64::from_le_bytes(entry(2)[16..24].try_into().unwrap()) as usize;
    assert_eq!(woff % 64, 0);
    assert_eq!(&b[woff..woff + wlen], m.weights.bytes());
    let goff = u64::from_le_bytes(entry(1)[8..16].try_into().unwrap()) as usize;
    let glen = u64::from_le_bytes(entry(1)[16..24].try_into().unwrap()) as usize;
    let g: ferrolite_runtime::Graph = serde_json::from_slice(&b[goff..goff + glen]).unwrap();
    assert_eq!(g, m.graph);
    assert_eq!(
        u32::from_le_bytes(entry(1)[24..28].try_into().unwrap()),
        crc32fast::hash(&b[goff..goff + glen])
    );
}

fn sections(m: &ferrolite_runtime::Model) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    (
        serde_json::to_vec(&m.meta).unwrap(),
        serde_json::to_vec(&m.graph).unwrap(),
        m.weights.bytes().to_vec(),
    )
}

#[test]
fn unknown_optional_section_is_skipped_required_one_rejected() {
    let m = small_model(7);
    let (meta, graph, w) = sections(&m);
    let extra = b"future data".as_slice();
    let b = format::write(&[(1, 1, &meta), (77, 0, extra), (2, 1, &graph), (3, 1, &w)]).unwrap();
    let back = bundle::from_bytes(&b).unwrap();
    assert_eq!(back.graph, m.graph);
    let b = format::write(&[(1, 1, &meta), (77, 1, extra), (2, 1, &graph), (3, 1, &w)]).unwrap();
    let e = bundle::from_bytes(&b).unwrap_err();
    assert!(
        matches!(e, Error::Unsupported(_)) && e.to_string().contains("77"),
        "{e}"
    );
}

#[test]
fn missing_and_duplicate_sections_are_rejected() {
    let m = small_model(8);
    let (meta, graph, w) = sections(&m);
    let b = format::write(&[(1, 1, &meta), (3, 1, &w)]).unwrap();
    let e = bundle::from_bytes(&b).unwrap_err();
    assert!(
        e.to_string().contains("required section GRAPH is missing"),
        "{e}"
    );
    let b = format::write(&[(1, 1, &meta), (2, 1, &graph), (2, 1, &graph), (3, 1, &w)]).unwrap();
    let e = bundle::from_bytes(&b).unwrap_err();
    assert!(e.to_string().contains("GRAPH appears twice"), "{e}");
}

#[test]
fn version_flags_length_and_checksums_are_checked() {
    let b = bytes_of(&small_model(9));
    let patch = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut c = b.clone();
        f(&mut c);
        format::refresh_checksums(&mut c).unwrap();
        bundle::from_bytes(&c).unwrap_err().to_string()
    };
    assert!(patch(&|c| c[8] = 2).contains("version 2.0"));
    let minor = {
        let mut c = b.clone();
        c[10] = 7;
        format::refresh_checksums(&mut c).unwrap();
        c
    };
    assert!(
        bundle::from_bytes(&minor).is_ok(),
        "newer minor versions are readable"
    );
    assert!(patch(&|c| c[12] = 1).contains("header flags"));
    assert!(patch(&|c| c[48] = 1).contains("reserved"));
    assert!(patch(&|c| c.push(0)).contains("truncated or extended"));
    // Overlapping sections: point GRAPH at METADATA's offset.
    let e = patch(&|c| {
        let meta_off: [u8; 8] = c[64 + 8..64 + 16].try_into().unwrap();
        c[96 + 8..96 + 16].copy_from_slice(&meta_off);
    });
    assert!(e.contains("overlap"), "{e}");
    // Huge section length.
    let e = patch(&|c| c[96 + 16..96 + 24].copy_from_slice(&u64::MAX.to_le_bytes()));
    assert!(e.contains("outside the data area"), "{e}");
    // Unpatched corruption: checksums catch it.
    let mut c = b.clone();
    let last = c.len() - 1;
    c[last] ^= 1;
    assert!(bundle::from_bytes(&c)
        .unwrap_err()
        .to_string()
        .contains("WEIGHTS checksum mismatch"));
    let mut c = b.clone();
    c[70] ^= 1;
    assert!(
        bundle::from_bytes(&c)
            .unwrap_err()
            .to_string()
            .contains("header checksum")
            || bundle::from_bytes(&c)
                .unwrap_err()
                .to_string()
                .contains("table checksum")
    );
    let mut c = b.clone();
    c[20] ^= 1;
    assert!(bundle::from_bytes(&c)
        .unwrap_err()
        .to_string()
        .contains("header checksum mismatch"));
}

#[test]
fn json_that_fails_validation_is_rejected_after_checksums() {
    let m = small_model(10);
    let (meta, _, w) = sections(&m);
    let mut g = m.graph.clone();
    g.tensors[3].shape = vec![1, 8, 8, 9];
    let b = bundle::assemble(&meta, &serde_json::to_vec(&g).unwrap(), &w).unwrap();
    let e = bundle::from_bytes(&b).unwrap_err();
    assert!(
        e.to_string().contains("conv1") && e.to_string().contains("[1, 8, 8, 9]"),
        "{e}"
    );
    let b = bundle::assemble(&meta, b"{\"tensors\": [", &w).unwrap();
    let e = bundle::from_bytes(&b).unwrap_err();
    assert!(
        e.to_string()
            .contains("GRAPH section is not valid graph JSON"),
        "{e}"
    );
    let deep = "[".repeat(100_000);
    let b = bundle::assemble(deep.as_bytes(), b"{}", &w).unwrap();
    let e = bundle::from_bytes(&b).unwrap_err();
    assert!(e.to_string().contains("METADATA"), "{e}");
}

#[test]
fn model_without_constants_round_trips_and_fifo_is_rejected() {
    use ferrolite_runtime::meta::{InputSpec, OutputSpec};
    let graph = ferrolite_runtime::Graph {
        tensors: vec![
            bundle_common::act("x", &[2, 6]),
            bundle_common::act("y", &[3, 4]),
        ],
        nodes: vec![bundle_common::node(
            "r",
            ferrolite_runtime::Op::Reshape,
            &[0],
            &[1],
        )],
        inputs: vec![0],
        outputs: vec![1],
    };
    let meta = ferrolite_runtime::Metadata {
        inputs: vec![InputSpec {
            name: "x".into(),
            shape: vec![2, 6],
            preprocess: None,
        }],
        outputs: vec![OutputSpec {
            name: "y".into(),
            shape: vec![3, 4],
        }],
        ..Default::default()
    };
    let b = bundle::to_bytes(&meta, &graph, &[]).unwrap();
    let dir = scratch_dir("noconst");
    let path = dir.join("r.flb");
    std::fs::write(&path, &b).unwrap();
    let back = bundle::load(&path).unwrap();
    assert_eq!(back.graph, graph);
    assert!(back.weights.bytes().is_empty());

    let fifo = dir.join("fifo.flb");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let e = bundle::load(&fifo).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}
