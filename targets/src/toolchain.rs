//! How to build for a profile's target on this machine: rustup's prebuilt standard library
//! when installed, else Debian's `rustc-web` + `rust-web-src` compiling `std` itself
//! (`-Zbuild-std`), else a message saying what to install.

use crate::profile::Profile;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the target's standard library comes from.
#[derive(Debug, Clone)]
pub enum Route {
    /// The build machine itself.
    Host,
    /// `rustup target add` installed the target's prebuilt `std`.
    Rustup,
    /// A rustc with its library source builds `std` for the target (`-Zbuild-std`).
    BuildStd { rustc: PathBuf },
}

/// Everything needed to invoke cargo for one profile.
#[derive(Debug, Clone)]
pub struct Toolchain {
    pub route: Route,
    /// Resolved linker: a cross gcc on PATH, or the NDK clang; `None` for an Android profile
    /// without the NDK (only a static library can be built then).
    pub linker: Option<PathBuf>,
    /// The NDK's `bin/` directory, for Android profiles when `ANDROID_NDK_HOME` is set.
    pub ndk_bin: Option<PathBuf>,
}

/// A rustc that can build `std` from source: `FERROLITE_CROSS_RUSTC`, else Debian's
/// `/usr/bin/rustc` from `rustc-web`, provided its library source is installed.
fn build_std_rustc() -> Option<PathBuf> {
    let rustc = std::env::var_os("FERROLITE_CROSS_RUSTC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/rustc"));
    let out = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    sysroot
        .join("lib/rustlib/src/rust/library/std/Cargo.toml")
        .is_file()
        .then_some(rustc)
}

fn rustup_has_target(triple: &str) -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == triple)
        })
        .unwrap_or(false)
}

/// Whether `program` is an executable on PATH (or an existing path).
pub fn on_path(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// The NDK's LLVM `bin/` directory from `ANDROID_NDK_HOME` (or `ANDROID_NDK_ROOT`).
fn ndk_bin() -> Result<Option<PathBuf>> {
    let Some(home) =
        std::env::var_os("ANDROID_NDK_HOME").or_else(|| std::env::var_os("ANDROID_NDK_ROOT"))
    else {
        return Ok(None);
    };
    let bin = Path::new(&home).join("toolchains/llvm/prebuilt/linux-x86_64/bin");
    if !bin.is_dir() {
        bail!(
            "ANDROID_NDK_HOME={} does not contain toolchains/llvm/prebuilt/linux-x86_64/bin",
            Path::new(&home).display()
        );
    }
    Ok(Some(bin))
}

/// Decide how to build for `p`, or explain exactly what is missing.
pub fn detect(p: &Profile) -> Result<Toolchain> {
    let route = if p.is_host() {
        Route::Host
    } else if rustup_has_target(&p.rust_target) {
        Route::Rustup
    } else if let Some(rustc) = build_std_rustc() {
        Route::BuildStd { rustc }
    } else {
        bail!(
            "no Rust standard library for {t}. Either install the prebuilt one with \
             `rustup target add {t}` (needs network access), or, on Debian/Ubuntu, \
             `sudo apt install rustc-web rust-web-src` (a rustc with its library source; \
             the standard library is then built from source, `-Zbuild-std`)",
            t = p.rust_target
        );
    };
    if p.is_android() {
        let ndk_bin = ndk_bin()?;
        let linker = match &ndk_bin {
            Some(bin) => {
                let clang = bin.join(&p.linker);
                if !clang.is_file() {
                    bail!(
                        "the NDK has no {} (API level 24+ toolchains are needed)",
                        clang.display()
                    );
                }
                Some(clang)
            }
            None => None,
        };
        return Ok(Toolchain {
            route,
            linker,
            ndk_bin,
        });
    }
    if !on_path(&p.linker) {
        bail!(
            "linker {} not found; install it with `sudo apt install {}`",
            p.linker,
            p.apt.join(" ")
        );
    }
    Ok(Toolchain {
        route,
        linker: Some(PathBuf::from(&p.linker)),
        ndk_bin: None,
    })
}

impl Toolchain {
    /// A `cargo <subcommand>` for the profile's target with its route, flags, linker and
    /// (for `run`/`test`) qemu runner configured through the environment.
    pub fn cargo(&self, p: &Profile, subcommand: &str) -> Command {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.arg(subcommand);
        let env = |k: &str| format!("CARGO_TARGET_{}_{k}", p.env_triple());
        if !matches!(self.route, Route::Host) {
            cmd.args(["--target", &p.rust_target]);
        }
        if let Route::BuildStd { rustc } = &self.route {
            cmd.arg("-Zbuild-std=std,panic_abort");
            cmd.env("RUSTC", rustc).env("RUSTC_BOOTSTRAP", "1");
            // Doctests must be compiled by the rustdoc matching that rustc.
            let rustdoc = rustc.with_file_name("rustdoc");
            if rustdoc.is_file() {
                cmd.env("RUSTDOC", rustdoc);
            }
        }
        if p.rust_target.starts_with("armv7") {
            // The armv7 NEON kernels use the still-unstable core::arch::arm intrinsics.
            cmd.env("RUSTC_BOOTSTRAP", "1");
        }
        if !p.rustflags.is_empty() {
            cmd.env(env("RUSTFLAGS"), p.rustflags.join(" "));
        }
        if let Some(linker) = &self.linker {
            if !matches!(self.route, Route::Host) {
                cmd.env(env("LINKER"), linker);
            }
        }
        if let Some(bin) = &self.ndk_bin {
            // C code (libjpeg-turbo in the CLI) is compiled by the NDK's clang too.
            let cc_triple = p.rust_target.replace('-', "_");
            if let Some(linker) = &self.linker {
                cmd.env(format!("CC_{cc_triple}"), linker);
            }
            cmd.env(format!("AR_{cc_triple}"), bin.join("llvm-ar"));
        }
        if !p.runner.is_empty() {
            cmd.env(env("RUNNER"), &p.runner);
        }
        if !p.qemu_cpu.is_empty() {
            cmd.env("QEMU_CPU", &p.qemu_cpu);
        }
        cmd
    }

    /// A short description of the route for logs.
    pub fn describe(&self) -> String {
        match &self.route {
            Route::Host => "host toolchain".into(),
            Route::Rustup => "rustup target".into(),
            Route::BuildStd { rustc } => format!("{} with -Zbuild-std", rustc.display()),
        }
    }
}
