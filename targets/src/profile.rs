//! Device profiles: one small TOML file per board or OS in `targets/`.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// What `cargo target-package` produces for a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageKind {
    /// A tarball with the stripped CLI, the default bundle and a README (Linux boards).
    Tarball,
    /// The static (and with the NDK, shared) library, the C header and `jniLibs/<abi>/`.
    Android,
}

/// One device profile (`targets/<name>.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Profile name, the file stem (`rpi4`).
    pub name: String,
    /// One line for `cargo target-list`.
    pub description: String,
    /// Rust target triple.
    pub rust_target: String,
    /// Tuning flags for the target (`-C target-cpu=…`).
    pub rustflags: Vec<String>,
    /// C linker (Linux: a cross gcc on PATH; Android: the NDK clang's file name).
    pub linker: String,
    /// Command that runs target binaries here (`qemu-aarch64-static -L …`), empty if none.
    pub runner: String,
    /// CPU model qemu emulates (`QEMU_CPU`), chosen to match the board's features.
    pub qemu_cpu: String,
    /// What to package.
    pub package: PackageKind,
    /// Android ABI directory name (`arm64-v8a`), for `jniLibs/<abi>/`.
    #[serde(default)]
    pub android_abi: Option<String>,
    /// Debian packages that provide the linker and the runner.
    pub apt: Vec<String>,
}

impl Profile {
    /// Whether this is an Android profile.
    pub fn is_android(&self) -> bool {
        self.package == PackageKind::Android
    }

    /// Whether this profile targets the machine we are building on.
    pub fn is_host(&self) -> bool {
        self.rust_target == host_triple()
    }

    /// The triple in the form cargo's per-target environment variables use
    /// (`CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_…`).
    pub fn env_triple(&self) -> String {
        self.rust_target.to_uppercase().replace(['-', '.'], "_")
    }

    /// The cross binutils prefix of a gcc linker (`aarch64-linux-gnu-`), if it is one.
    pub fn binutils_prefix(&self) -> Option<&str> {
        self.linker.strip_suffix("gcc").filter(|p| p.ends_with('-'))
    }
}

/// The triple this tool was built for (the build machine).
pub fn host_triple() -> &'static str {
    if cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        "x86_64-unknown-linux-gnu"
    } else if cfg!(all(target_arch = "aarch64", target_os = "linux")) {
        "aarch64-unknown-linux-gnu"
    } else {
        "unknown"
    }
}

/// The `targets/` directory of this workspace.
pub fn profiles_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Every profile, sorted by name.
pub fn all() -> Result<Vec<Profile>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(profiles_dir())? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml")
            && path.file_stem() != Some("Cargo".as_ref())
        {
            out.push(read(&path)?);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The profile called `name`, or an error listing the known ones.
pub fn find(name: &str) -> Result<Profile> {
    let profiles = all()?;
    if let Some(p) = profiles.iter().find(|p| p.name == name) {
        return Ok(p.clone());
    }
    let known: Vec<_> = profiles.iter().map(|p| p.name.as_str()).collect();
    bail!(
        "no profile {name:?} in targets/ (known: {})",
        known.join(", ")
    )
}

fn read(path: &Path) -> Result<Profile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let p: Profile =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if p.name != stem {
        bail!(
            "{}: name {:?} does not match the file name",
            path.display(),
            p.name
        );
    }
    if p.is_android() && p.android_abi.is_none() {
        bail!("{}: an Android profile needs android_abi", path.display());
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_required_profile_parses_with_its_target() {
        let want = [
            ("rpi3", "armv7-unknown-linux-gnueabihf"),
            ("rpi4", "aarch64-unknown-linux-gnu"),
            ("rpi5", "aarch64-unknown-linux-gnu"),
            ("android-arm64", "aarch64-linux-android"),
            ("android-armv7", "armv7-linux-androideabi"),
            ("x86_64-linux", "x86_64-unknown-linux-gnu"),
        ];
        for (name, triple) in want {
            let p = find(name).unwrap();
            assert_eq!(p.rust_target, triple, "{name}");
            assert_eq!(p.is_android(), name.starts_with("android"), "{name}");
        }
        assert!(find("rpi9").unwrap_err().to_string().contains("rpi4"));
    }

    #[test]
    fn derived_names() {
        let p = find("rpi4").unwrap();
        assert_eq!(p.env_triple(), "AARCH64_UNKNOWN_LINUX_GNU");
        assert_eq!(p.binutils_prefix(), Some("aarch64-linux-gnu-"));
        assert_eq!(find("android-arm64").unwrap().binutils_prefix(), None);
    }
}
