//! Interruptions. Writes that never lose a file: `zoo export`, `convert -o` and `run --output` are stopped
//! in the middle of writing their output over a file that is already there, in the two ways
//! a device stops a write: the process is killed (a file-size limit below the output's size
//! sends SIGXFSZ on the write that crosses it, which kills at exactly that point), and the
//! write fails (the same limit with the signal ignored: the write returns EFBIG, as it
//! returns ENOSPC on a full disk). Either way the old file keeps its bytes, a failure is a
//! named error, and no temporary file outlives the next write. `.ci/faults` adds a real full
//! tmpfs. Needs `sh` and util-linux `prlimit`. And Ctrl-C in `eval` and `bench`, which
//! print what they measured so far and exit with 130.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use common::{ok, s, scratch, values};

/// Run `ferrolite args` with its file-size limit at `max_file_bytes`; with `ignore_signal`
/// SIGXFSZ is ignored, so the crossing write fails instead of killing the process.
fn limited(args: &[&str], max_file_bytes: u64, ignore_signal: bool) -> Output {
    let trap = if ignore_signal { "trap '' XFSZ; " } else { "" };
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{trap}exec prlimit --fsize={max_file_bytes} \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_ferrolite"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("sh and prlimit start")
}

/// Temporary files left in `dir` (`.NAME.tmp-PID-N`).
fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

/// Stop `args` (which write `target`, an existing file) by a kill and by a failing write at
/// `limit` bytes; `target` must keep its bytes both times. Then an unlimited run writes it
/// and leaves no temporary file behind.
fn check_interrupted_writes(args: &[&str], target: &Path, limit: u64) {
    let dir = target.parent().unwrap();
    let old = b"the file the user had before; it must survive".repeat(10);
    std::fs::write(target, &old).unwrap();

    let killed = limited(args, limit, false);
    assert_eq!(
        killed.status.signal(),
        Some(Signal::SIGXFSZ as i32),
        "ferrolite {args:?} should be killed mid-write: {:?} {}",
        killed.status,
        String::from_utf8_lossy(&killed.stderr)
    );
    assert_eq!(
        std::fs::read(target).unwrap(),
        old,
        "{args:?}: killed mid-write"
    );
    assert_eq!(
        temporaries(dir).len(),
        1,
        "{args:?}: the killed write's temporary"
    );

    let failed = limited(args, limit, true);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(
        stderr.starts_with("error: ")
            && stderr.contains("cannot write")
            && !stderr.contains("panicked"),
        "{args:?}: {stderr}"
    );
    assert!(
        stderr.contains("too large"),
        "{args:?}: the OS error is kept: {stderr}"
    );
    assert_eq!(
        std::fs::read(target).unwrap(),
        old,
        "{args:?}: failed write"
    );

    ok(args);
    assert_ne!(std::fs::read(target).unwrap(), old, "{args:?}: written");
    assert_eq!(
        temporaries(dir),
        Vec::<String>::new(),
        "{args:?}: stale temporaries"
    );
}

#[test]
fn zoo_export_convert_and_run_output_never_lose_the_old_file() {
    let dir = scratch("faults");
    let onnx = dir.join("model.onnx");
    let spec = "zoo:mobilenet_v3_small?resolution=32";
    // The zoo ONNX is ~10 MB, its bundle as large: a 1 MB limit stops both mid-write.
    check_interrupted_writes(
        &["zoo", "export", &spec[4..], "-o", s(&onnx)],
        &onnx,
        1 << 20,
    );
    let bundle = dir.join("model.flb");
    check_interrupted_writes(
        &["convert", s(&onnx), "-o", s(&bundle), "--precision", "fp32"],
        &bundle,
        1 << 20,
    );
    let input = dir.join("input.npy");
    common::write_npy(&input, &[1, 3, 32, 32], &values(3 * 32 * 32));
    let output = dir.join("output.npy");
    // The output .npy holds 1000 floats (4 KB): 1 KB stops it.
    check_interrupted_writes(
        &[
            "run",
            s(&bundle),
            "--input",
            s(&input),
            "--output",
            s(&output),
        ],
        &output,
        1 << 10,
    );
}

/// Start `ferrolite args`, press Ctrl-C (SIGINT) after `after`, and return its output; the
/// process must end within 10 s of the signal.
fn interrupted(args: &[&str], after: Duration) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_ferrolite"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ferrolite starts");
    std::thread::sleep(after);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("SIGINT sent");
    let sent = Instant::now();
    let waiter = std::thread::spawn(move || child.wait_with_output().expect("waits"));
    while !waiter.is_finished() {
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "ferrolite {args:?} still runs 10 s after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    waiter.join().unwrap()
}

#[test]
fn ctrl_c_in_eval_and_bench_prints_what_was_measured() {
    // 2000 labeled images (links to the sample panda): far more than 2 s of work.
    let dir = scratch("ctrl_c").join("images");
    std::fs::create_dir_all(&dir).unwrap();
    let panda =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/samples/n02510455_7939_giant_panda.jpg");
    for i in 0..2000 {
        let link = dir.join(format!("n02510455_{i}.jpg"));
        if !link.exists() {
            std::os::unix::fs::symlink(&panda, link).unwrap();
        }
    }
    let out = interrupted(
        &[
            "eval",
            "models/efficientnet_lite0.flb",
            "--images",
            s(&dir),
            "--json",
        ],
        Duration::from_secs(2),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "eval: {stderr}");
    assert!(
        stderr.contains("interrupted (Ctrl-C)") && !stderr.contains("panicked"),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("eval JSON");
    let images = report["images"].as_u64().unwrap();
    assert!(
        report["interrupted"] == true && report["found"] == 2000,
        "{report}"
    );
    assert!(images > 0 && images < 2000, "{report}");
    assert_eq!(
        report["labeled"], images,
        "every image is labeled: {report}"
    );
    assert_eq!(report["top1"], 1.0, "the panda is a panda: {report}");

    let asked = 10_000_000;
    let out = interrupted(
        &[
            "bench",
            "zoo:mobilenet_v3_small?resolution=32",
            "--runs",
            &asked.to_string(),
            "--json",
        ],
        Duration::from_secs(5),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "bench: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bench JSON");
    let runs = report["runs"].as_u64().unwrap();
    assert!(
        report["interrupted"] == true && runs > 0 && runs < asked,
        "{report}"
    );
    assert!(report["median_ms"].as_f64().unwrap() > 0.0, "{report}");
}
