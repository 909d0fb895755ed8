//! CPU topology: sysfs fixture trees (`tests/fixtures/topology/<name>/sys/...`), CPU list
//! parsing and formatting, and detection and pinning on the machine running the tests.

use std::path::{Path, PathBuf};

use ferrolite_runtime::threads::topology::{
    allowed_cpus, format_cpu_list, parse_cpu_list, pin_current_thread, CapacitySource, Cpu,
    Topology,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/topology")
        .join(name)
}

fn read_fixture(name: &str) -> Topology {
    Topology::read(&fixture(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// `(id, capacity)` pairs as `Cpu`s.
fn cpus(pairs: &[(usize, u64)]) -> Vec<Cpu> {
    pairs
        .iter()
        .map(|&(id, capacity)| Cpu { id, capacity })
        .collect()
}

/// A scratch sysfs tree under Cargo's per-test-target temp dir, emptied first.
fn scratch(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("topology")
        .join(name);
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("sys/devices/system/cpu")).unwrap();
    root
}

fn write(root: &Path, rel: &str, bytes: impl AsRef<[u8]>) {
    let path = root.join("sys/devices/system/cpu").join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

#[test]
fn rpi4_four_equal_a72() {
    let t = read_fixture("rpi4");
    assert_eq!(t.source, CapacitySource::CpuCapacity);
    assert_eq!(t.cpus, cpus(&[(0, 1024), (1, 1024), (2, 1024), (3, 1024)]));
    assert_eq!(t.big_cores(), vec![0, 1, 2, 3]);
    assert_eq!(t.capacity(3), Some(1024));
    assert_eq!(t.capacity(4), None);
    assert_eq!(
        t.describe(),
        "4 CPUs, capacities 4x1024 (cpu_capacity), big cores 0-3"
    );
}

#[test]
fn rpi5_four_equal_a76() {
    let t = read_fixture("rpi5");
    assert_eq!(t.source, CapacitySource::CpuCapacity);
    assert_eq!(t.cpus, cpus(&[(0, 1024), (1, 1024), (2, 1024), (3, 1024)]));
    assert_eq!(t.big_cores(), vec![0, 1, 2, 3]);
    assert_eq!(
        t.describe(),
        "4 CPUs, capacities 4x1024 (cpu_capacity), big cores 0-3"
    );
}

#[test]
fn phone_4_3_1_prefers_capacity_over_freq() {
    let t = read_fixture("phone-4-3-1");
    // cpu_capacity wins over the max frequencies, which are present too.
    assert_eq!(t.source, CapacitySource::CpuCapacity);
    assert_eq!(
        t.cpus,
        cpus(&[
            (0, 325),
            (1, 325),
            (2, 325),
            (3, 325),
            (4, 870),
            (5, 870),
            (6, 870),
            (7, 1024),
        ])
    );
    assert_eq!(t.big_cores(), vec![4, 5, 6, 7]);
    assert_eq!(t.capacity(0), Some(325));
    assert_eq!(t.capacity(5), Some(870));
    assert_eq!(t.capacity(7), Some(1024));
    assert_eq!(t.capacity(8), None);
    assert_eq!(
        t.describe(),
        "8 CPUs, capacities 4x325 3x870 1x1024 (cpu_capacity), big cores 4-7"
    );
}

#[test]
fn phone_freq_only_uses_max_freq() {
    let t = read_fixture("phone-freq-only");
    assert_eq!(t.source, CapacitySource::MaxFreq);
    let expected: Vec<(usize, u64)> = (0..8)
        .map(|id| (id, if id < 4 { 1_800_000 } else { 2_400_000 }))
        .collect();
    assert_eq!(t.cpus, cpus(&expected));
    // 1.8 / 2.4 GHz = 75 %: little by the 80 % frequency rule.
    assert_eq!(t.big_cores(), vec![4, 5, 6, 7]);
    assert_eq!(t.capacity(4), Some(2_400_000));
    assert_eq!(
        t.describe(),
        "8 CPUs, capacities 4x1800000 4x2400000 (cpuinfo_max_freq kHz), big cores 4-7"
    );
}

#[test]
fn offline_cpu_is_left_out() {
    let t = read_fixture("offline-cpu");
    assert_eq!(t.source, CapacitySource::CpuCapacity);
    assert_eq!(t.cpus, cpus(&[(0, 1024), (1, 1024), (3, 1024)]));
    assert_eq!(t.big_cores(), vec![0, 1, 3]);
    assert_eq!(t.capacity(2), None, "cpu2 is offline");
    assert_eq!(
        t.describe(),
        "3 CPUs (0-1,3), capacities 3x1024 (cpu_capacity), big cores 0-1,3"
    );
}

#[test]
fn no_info_is_uniform() {
    let t = read_fixture("no-info");
    assert_eq!(t.source, CapacitySource::Uniform);
    assert_eq!(t.cpus, cpus(&[(0, 1), (1, 1)]));
    assert_eq!(t.big_cores(), vec![0, 1]);
    assert_eq!(t.describe(), "2 CPUs, uniform capacity, big cores 0-1");
}

/// `garbage`: `online` is "0-x" (so the cpuN dirs are listed instead, skipping `cpufreq`,
/// `cpuidle`, `cpuX` and `kernel_max`); cpu_capacity is "abc", "", "99999999999999999999999"
/// and "1024", so not every CPU has one; every max freq is valid, so MaxFreq it is.
#[test]
fn garbage_capacity_falls_back_to_max_freq() {
    let t = read_fixture("garbage");
    assert_eq!(t.source, CapacitySource::MaxFreq);
    assert_eq!(
        t.cpus,
        cpus(&[
            (0, 1_800_000),
            (1, 1_800_000),
            (2, 2_400_000),
            (3, 2_400_000)
        ])
    );
    assert_eq!(t.big_cores(), vec![2, 3]);
    assert_eq!(
        t.describe(),
        "4 CPUs, capacities 2x1800000 2x2400000 (cpuinfo_max_freq kHz), big cores 2-3"
    );
}

/// `garbage-all`: capacities "-1", "1e3", "0", "1024"; max freqs "0", non-UTF-8 bytes,
/// "1 800 000", 2^64: neither source covers every CPU, so Uniform.
#[test]
fn garbage_everywhere_is_uniform() {
    let t = read_fixture("garbage-all");
    assert_eq!(t.source, CapacitySource::Uniform);
    assert_eq!(t.cpus, cpus(&[(0, 1), (1, 1), (2, 1), (3, 1)]));
    assert_eq!(t.big_cores(), vec![0, 1, 2, 3]);
    assert_eq!(t.describe(), "4 CPUs, uniform capacity, big cores 0-3");
}

#[test]
fn every_fixture_reads_and_describes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/topology");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "garbage",
            "garbage-all",
            "no-info",
            "offline-cpu",
            "phone-4-3-1",
            "phone-freq-only",
            "rpi4",
            "rpi5"
        ]
    );
    for name in &names {
        let t = read_fixture(name);
        assert!(!t.cpus.is_empty(), "{name}");
        assert!(t.cpus.windows(2).all(|w| w[0].id < w[1].id), "{name}");
        let big = t.big_cores();
        assert!(!big.is_empty(), "{name}");
        assert!(big.iter().all(|&id| t.capacity(id).is_some()), "{name}");
        assert!(t.describe().starts_with(&format!("{} CPU", t.cpus.len())));
    }
}

// ---------------------------------------------------------------------------------------
// Generated trees: what the fixtures cannot hold tidily
// ---------------------------------------------------------------------------------------

#[test]
fn missing_or_empty_tree_is_an_error() {
    let missing = Path::new(env!("CARGO_TARGET_TMPDIR")).join("topology/does-not-exist");
    let err = Topology::read(&missing).unwrap_err();
    assert!(err.contains("sys/devices/system/cpu"), "{err}");

    let empty = scratch("empty");
    let err = Topology::read(&empty).unwrap_err();
    assert!(err.contains("no online CPU"), "{err}");
}

#[test]
fn oversized_files_count_as_missing() {
    let root = scratch("oversized");
    // An `online` file over 4 KiB: ignored, the cpuN dirs are listed instead.
    write(&root, "online", format!("0-1{}", " ".repeat(5000)));
    // A megabyte of digits for cpu0's capacity: missing, so max freq is used.
    write(&root, "cpu0/cpu_capacity", "9".repeat(1 << 20));
    write(&root, "cpu1/cpu_capacity", "1024\n");
    write(&root, "cpu0/cpufreq/cpuinfo_max_freq", "2000000\n");
    write(&root, "cpu1/cpufreq/cpuinfo_max_freq", "2000000\n");
    let t = Topology::read(&root).unwrap();
    assert_eq!(t.source, CapacitySource::MaxFreq);
    assert_eq!(t.cpus, cpus(&[(0, 2_000_000), (1, 2_000_000)]));
}

#[test]
fn dir_listing_skips_cpus_marked_offline() {
    let root = scratch("per-cpu-online");
    for id in 0..4 {
        write(&root, &format!("cpu{id}/cpu_capacity"), "512\n");
    }
    write(&root, "cpu1/online", "0\n");
    write(&root, "cpu2/online", "1\n");
    write(&root, "cpu5000/cpu_capacity", "512\n"); // beyond 4095: ignored
    write(&root, "online", ""); // empty: ignored
    let t = Topology::read(&root).unwrap();
    assert_eq!(t.cpus, cpus(&[(0, 512), (2, 512), (3, 512)]));
    assert_eq!(t.source, CapacitySource::CpuCapacity);
}

#[test]
fn online_cpu_without_a_dir_makes_it_uniform() {
    let root = scratch("online-without-dir");
    write(&root, "online", "0-2\n");
    write(&root, "cpu0/cpu_capacity", "1024\n");
    write(&root, "cpu1/cpu_capacity", "1024\n");
    let t = Topology::read(&root).unwrap();
    assert_eq!(t.source, CapacitySource::Uniform);
    assert_eq!(t.cpus, cpus(&[(0, 1), (1, 1), (2, 1)]));
}

#[test]
fn describe_single_cpu_and_huge_capacities() {
    let one = Topology {
        cpus: cpus(&[(0, 1024)]),
        source: CapacitySource::CpuCapacity,
    };
    assert_eq!(
        one.describe(),
        "1 CPU, capacities 1x1024 (cpu_capacity), big core 0"
    );
    // No overflow in the percentage comparison.
    let huge = Topology {
        cpus: cpus(&[(0, u64::MAX), (1, u64::MAX / 2), (2, u64::MAX / 10 * 7)]),
        source: CapacitySource::CpuCapacity,
    };
    assert_eq!(huge.big_cores(), vec![0, 2]);
    let empty = Topology {
        cpus: Vec::new(),
        source: CapacitySource::Uniform,
    };
    assert!(empty.big_cores().is_empty());
    assert_eq!(empty.capacity(0), None);
}

// ---------------------------------------------------------------------------------------
// CPU lists
// ---------------------------------------------------------------------------------------

#[test]
fn parse_cpu_list_accepts_kernel_and_user_lists() {
    let ok = |s: &str| parse_cpu_list(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
    assert_eq!(ok("0-3,5,7-8"), vec![0, 1, 2, 3, 5, 7, 8]);
    assert_eq!(ok("0-3\n"), vec![0, 1, 2, 3]);
    assert_eq!(ok("  4-7 \n"), vec![4, 5, 6, 7]);
    assert_eq!(ok(" 1 - 2 , 4 "), vec![1, 2, 4]);
    assert_eq!(ok("5"), vec![5]);
    assert_eq!(ok("3,1,2,1"), vec![1, 2, 3]);
    assert_eq!(ok("0-2,1-3"), vec![0, 1, 2, 3]);
    assert_eq!(ok("4-4"), vec![4]);
    assert_eq!(ok("007"), vec![7]);
    assert_eq!(ok("4095"), vec![4095]);
    assert_eq!(ok("0-4095"), (0..=4095).collect::<Vec<_>>());
}

#[test]
fn parse_cpu_list_errors_name_the_bad_part() {
    let err = |s: &str| parse_cpu_list(s).expect_err(s);
    assert_eq!(err("4-x"), r#"--cpus "4-x": "x" is not a CPU number"#);
    assert_eq!(err("x"), r#"--cpus "x": "x" is not a CPU number"#);
    assert_eq!(err("+5"), r#"--cpus "+5": "+5" is not a CPU number"#);
    assert_eq!(err("1 2"), r#"--cpus "1 2": "1 2" is not a CPU number"#);
    assert_eq!(err("1-2-3"), r#"--cpus "1-2-3": "2-3" is not a CPU number"#);
    assert_eq!(err("0-7:2"), r#"--cpus "0-7:2": "7:2" is not a CPU number"#);
    assert_eq!(err(""), r#"--cpus "": the CPU list is empty"#);
    assert_eq!(err(" \n\t"), r#"--cpus "": the CPU list is empty"#);
    assert_eq!(
        err("5-3"),
        r#"--cpus "5-3": "5-3" is a descending range (write "3-5")"#
    );
    assert_eq!(
        err("4096"),
        r#"--cpus "4096": CPU 4096 is above the highest supported CPU 4095"#
    );
    assert_eq!(
        err("0-4096"),
        r#"--cpus "0-4096": CPU 4096 is above the highest supported CPU 4095"#
    );
    assert_eq!(
        err("99999999999999999999999"),
        r#"--cpus "99999999999999999999999": CPU 99999999999999999999999 is above the highest supported CPU 4095"#
    );
    for s in ["0,,3", "0-3,", ",1", ","] {
        assert_eq!(
            err(s),
            format!("--cpus {s:?}: empty entry (stray comma)"),
            "{s:?}"
        );
    }
    for (s, part) in [("-3", "-3"), ("3-", "3-"), ("-", "-"), ("1,-2", "-2")] {
        assert_eq!(
            err(s),
            format!(r#"--cpus {s:?}: {part:?} is not a CPU range (write "first-last")"#),
            "{s:?}"
        );
    }
    // The input is quoted trimmed, with control characters escaped.
    assert_eq!(err(" 4-x\n"), r#"--cpus "4-x": "x" is not a CPU number"#);
    assert_eq!(
        err("1\t;2"),
        r#"--cpus "1\t;2": "1\t;2" is not a CPU number"#
    );
}

#[test]
fn format_cpu_list_is_compact() {
    assert_eq!(format_cpu_list(&[]), "");
    assert_eq!(format_cpu_list(&[5]), "5");
    assert_eq!(format_cpu_list(&[4, 5]), "4-5");
    assert_eq!(format_cpu_list(&[0, 1, 2, 3, 5]), "0-3,5");
    assert_eq!(format_cpu_list(&[5, 3, 4, 0, 3]), "0,3-5");
    assert_eq!(format_cpu_list(&[0, 2, 4, 6]), "0,2,4,6");
    assert_eq!(format_cpu_list(&[1, 2, 3, 7, 8, 4095]), "1-3,7-8,4095");
}

#[test]
fn cpu_lists_round_trip() {
    for canonical in [
        "0",
        "0-3",
        "0-3,5",
        "0-1,3",
        "4-7",
        "0,2,4-6,9-4095",
        "0-4095",
    ] {
        let ids = parse_cpu_list(canonical).unwrap();
        assert_eq!(format_cpu_list(&ids), canonical);
    }
    for (input, canonical) in [
        ("3,2,1,0", "0-3"),
        ("0-3,4", "0-4"),
        (" 7 , 5-6\n", "5-7"),
        ("1,1,1", "1"),
    ] {
        assert_eq!(format_cpu_list(&parse_cpu_list(input).unwrap()), canonical);
    }
    let sets: [&[usize]; 4] = [&[0], &[0, 1, 2, 3, 5], &[1, 3, 5, 7], &[4094, 4095]];
    for ids in sets {
        assert_eq!(parse_cpu_list(&format_cpu_list(ids)).unwrap(), ids);
    }
}

// ---------------------------------------------------------------------------------------
// This machine
// ---------------------------------------------------------------------------------------

#[test]
fn detect_finds_this_machine() {
    let t = Topology::detect();
    assert!(!t.cpus.is_empty());
    assert!(std::ptr::eq(t, Topology::detect()), "detect() is cached");
    let big = t.big_cores();
    assert!(!big.is_empty());
    assert!(big.iter().all(|&id| t.capacity(id).is_some()));
    assert!(!t.describe().is_empty());
    if cfg!(target_os = "linux") {
        if let Ok(read) = Topology::read(Path::new("/")) {
            assert_eq!(*t, read);
        }
    }
}

#[test]
fn allowed_cpus_on_linux() {
    let allowed = allowed_cpus();
    if cfg!(any(target_os = "linux", target_os = "android")) {
        let allowed = allowed.expect("sched_getaffinity works on Linux");
        assert!(!allowed.is_empty());
        assert!(allowed.windows(2).all(|w| w[0] < w[1]));
    } else {
        assert_eq!(allowed, None);
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn pin_to_first_allowed_cpu() {
    let allowed = allowed_cpus().unwrap();
    let first = allowed[0];
    // In a thread of its own, so the test harness thread keeps its affinity.
    let after = std::thread::spawn(move || pin_current_thread(&[first]).map(|()| allowed_cpus()))
        .join()
        .unwrap();
    assert_eq!(after, Ok(Some(vec![first])));
    assert_eq!(
        allowed_cpus(),
        Some(allowed),
        "only the spawned thread was pinned"
    );
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn pin_refusals_explain_themselves() {
    let before = allowed_cpus().unwrap();
    let errors = std::thread::spawn(|| {
        let huge = pin_current_thread(&[4095]);
        let empty = pin_current_thread(&[]);
        let mixed = pin_current_thread(&[0, 1, 2, 3, 4095]);
        (huge, empty, mixed, allowed_cpus())
    })
    .join()
    .unwrap();
    let (huge, empty, mixed, after) = errors;
    let huge = huge.unwrap_err();
    assert!(
        huge.starts_with("sched_setaffinity to CPU 4095 refused: "),
        "{huge}"
    );
    let empty = empty.unwrap_err();
    assert!(empty.contains("empty CPU list"), "{empty}");
    let mixed = mixed.unwrap_err();
    assert!(
        mixed.starts_with("sched_setaffinity to CPUs 0-3,4095 refused: "),
        "{mixed}"
    );
    assert_eq!(
        after,
        Some(before),
        "a refused pin leaves the affinity alone"
    );

    // A CPU the mask can hold but this process may not use: the kernel says EINVAL.
    if let Some(unusable) = (0..1024)
        .rev()
        .find(|id| !allowed_cpus().unwrap().contains(id))
    {
        let err = std::thread::spawn(move || pin_current_thread(&[unusable]))
            .join()
            .unwrap()
            .unwrap_err();
        assert!(
            err.starts_with(&format!(
                "sched_setaffinity to CPU {unusable} refused: EINVAL"
            )),
            "{err}"
        );
    }
}
