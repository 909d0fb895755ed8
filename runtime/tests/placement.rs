//! Which threads a session runs on, per board: one thread per big core by default, pinned,
//! fastest core first; `--threads` and `--cpus` override; CPUs the process may not use are
//! refused by name.

use std::path::Path;

use ferrolite_runtime::threads::{Placement, Topology};

fn board(name: &str) -> Topology {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/topology")
        .join(name);
    Topology::read(&root).expect("fixture topology")
}

fn place(b: &str, threads: Option<usize>, cpus: Option<&[usize]>) -> Placement {
    Placement::resolve(threads, cpus, true, &board(b), None).expect("placement")
}

#[test]
fn raspberry_pis_use_all_four_cores_pinned() {
    for b in ["rpi4", "rpi5"] {
        let p = place(b, None, None);
        assert_eq!(p.threads, 4);
        assert_eq!(p.cpus, [0, 1, 2, 3]);
        assert_eq!(p.pin, [0, 1, 2, 3]);
        assert_eq!(p.describe(), "4 threads on CPUs 0-3 (pinned)");
    }
}

#[test]
fn a_phone_uses_its_big_cores_fastest_first() {
    // 4 x A510 (325), 3 x A710 (870), 1 x X2 (1024): the big cores are 4-7, and the caller
    // (thread 0) gets the X2.
    let p = place("phone-4-3-1", None, None);
    assert_eq!(p.threads, 4);
    assert_eq!(p.cpus, [4, 5, 6, 7]);
    assert_eq!(p.pin, [7, 4, 5, 6]);
    // Two threads: the X2 and the first A710.
    assert_eq!(place("phone-4-3-1", Some(2), None).pin, [7, 4]);
    // Without cpu_capacity, the clock decides.
    assert_eq!(place("phone-freq-only", None, None).cpus, [4, 5, 6, 7]);
}

#[test]
fn cpus_and_threads_override_the_default() {
    let p = place("phone-4-3-1", None, Some(&[0, 1]));
    assert_eq!((p.threads, p.pin.as_slice()), (2, &[0, 1][..]));
    // More threads than CPUs: all of them run on the set, none pinned to one core.
    let p = place("rpi4", Some(6), None);
    assert_eq!((p.threads, p.pin.len()), (6, 0));
    assert_eq!(p.describe(), "6 threads on CPUs 0-3 (unpinned)");
    // Pinning off.
    let p = Placement::resolve(Some(2), None, false, &board("rpi5"), None).unwrap();
    assert!(p.pin.is_empty());
}

#[test]
fn the_allowed_cpu_mask_is_respected() {
    // A process confined to the little cores (taskset) runs there.
    let allowed = [0, 1, 2, 3];
    let p = Placement::resolve(None, None, true, &board("phone-4-3-1"), Some(&allowed)).unwrap();
    assert_eq!(p.cpus, [0, 1, 2, 3]);
    // Confined to two big cores: those two.
    let allowed = [5, 7];
    let p = Placement::resolve(None, None, true, &board("phone-4-3-1"), Some(&allowed)).unwrap();
    assert_eq!(p.pin, [7, 5]);
}

#[test]
fn bad_requests_are_named() {
    let t = board("offline-cpu");
    let e = Placement::resolve(None, Some(&[2]), true, &t, None).unwrap_err();
    assert_eq!(e, "--cpus 2: CPU 2 is not online (online: 0-1,3)");
    let e = Placement::resolve(None, Some(&[1, 3]), true, &t, Some(&[0, 1])).unwrap_err();
    assert_eq!(
        e,
        "--cpus 1,3: CPU 3 is not available to this process (allowed: 0-1)"
    );
    let e = Placement::resolve(Some(0), None, true, &t, None).unwrap_err();
    assert!(e.contains("at least one thread"), "{e}");
    let e = Placement::resolve(Some(100_000), None, true, &t, None).unwrap_err();
    assert!(e.contains("at most"), "{e}");
}
