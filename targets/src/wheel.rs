//! `cargo target-package <board> --python`: the `ferrolite` Python package for a Linux board as
//! one abi3 wheel (every CPython ≥ 3.9 on that CPU architecture), written without maturin or a
//! target Python: the extension module is cross-built by cargo, the pure-Python files and the
//! metadata come from `python/`.

use crate::profile::Profile;
use anyhow::{bail, Context, Result};
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use zip::write::SimpleFileOptions;

/// The `[project]` table of `python/pyproject.toml`: what the wheel's metadata says.
#[derive(Debug, Deserialize)]
pub struct Project {
    /// Distribution name (`ferrolite`).
    pub name: String,
    /// Version, the same as maturin would write.
    pub version: String,
    /// One-line summary.
    pub description: String,
    /// `>=3.9`: also the abi3 floor of the extension (`cp39-abi3`).
    #[serde(rename = "requires-python")]
    pub requires_python: String,
    /// Runtime requirements (`numpy>=1.21`).
    #[serde(default)]
    pub dependencies: Vec<String>,
}

#[derive(Deserialize)]
struct PyProject {
    project: Project,
}

/// Read `python/pyproject.toml`.
pub fn project(root: &Path) -> Result<Project> {
    let path = root.join("python/pyproject.toml");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let parsed: PyProject =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(parsed.project)
}

/// The wheel's Python tag from `requires-python` (`>=3.9` → `cp39-abi3`).
fn python_tag(project: &Project) -> Result<String> {
    let floor = project
        .requires_python
        .trim()
        .strip_prefix(">=")
        .and_then(|v| v.trim().strip_prefix("3."))
        .and_then(|minor| minor.parse::<u32>().ok());
    match floor {
        Some(minor) => Ok(format!("cp3{minor}-abi3")),
        None => bail!(
            "python/pyproject.toml: requires-python {:?} is not of the form \">=3.N\"",
            project.requires_python
        ),
    }
}

/// The CPU part of a platform tag, as `uname -m` spells it on the board.
fn arch_tag(p: &Profile) -> Result<&'static str> {
    let arch = p.rust_target.split('-').next().unwrap_or_default();
    Ok(match arch {
        "aarch64" => "aarch64",
        "armv7" => "armv7l",
        "x86_64" => "x86_64",
        other => bail!("no Python platform tag known for the {other} architecture"),
    })
}

/// Libraries a manylinux wheel may link without bundling them (PEP 600's base set).
const MANYLINUX_LIBS: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libgcc_s.so.1",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "ld-linux-aarch64.so.1",
    "ld-linux-armhf.so.3",
    "ld-linux-x86-64.so.2",
];

/// The platform tag the extension really needs, read off its dynamic section with the
/// target's `objdump`: `manylinux_2_<N>_<arch>` where N is the newest glibc symbol version
/// it imports, or plain `linux_<arch>` if it links anything outside the manylinux set.
pub fn platform_tag(p: &Profile, so: &Path) -> Result<String> {
    let arch = arch_tag(p)?;
    let objdump = format!("{}objdump", p.binutils_prefix().unwrap_or_default());
    let out = Command::new(&objdump)
        .arg("-pT")
        .arg(so)
        .output()
        .with_context(|| format!("running {objdump}"))?;
    if !out.status.success() {
        bail!(
            "{objdump} -pT {} failed: {}",
            so.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let foreign: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("NEEDED"))
        .map(str::trim)
        .filter(|lib| !MANYLINUX_LIBS.contains(lib))
        .collect();
    if !foreign.is_empty() {
        eprintln!(
            "note: the extension links {}, outside the manylinux set: tagging the wheel linux_{arch}",
            foreign.join(", ")
        );
        return Ok(format!("linux_{arch}"));
    }
    let glibc_minor = text
        .split("GLIBC_2.")
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        })
        .max()
        .unwrap_or(17);
    Ok(format!("manylinux_2_{}_{arch}", glibc_minor.max(17)))
}

/// One file of the wheel: its path inside the archive, bytes and mode.
struct Entry {
    path: String,
    bytes: Vec<u8>,
    mode: u32,
}

/// The package's own files from `python/ferrolite/` (`.py`, `.pyi`, `py.typed`); a module
/// built there by `maturin develop` or caches are left out.
fn python_sources(root: &Path, package: &str) -> Result<Vec<Entry>> {
    let dir = root.join("python").join(package);
    let mut names: Vec<PathBuf> = fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("listing {}", dir.display()))?
        .into_iter()
        .filter(|path| {
            path.is_file()
                && (path.extension().is_some_and(|e| e == "py" || e == "pyi")
                    || path.file_name().is_some_and(|n| n == "py.typed"))
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            Ok(Entry {
                path: format!("{package}/{name}"),
                bytes: fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
                mode: 0o644,
            })
        })
        .collect()
}

/// `METADATA` (core metadata 2.1) with the package README as its long description.
fn metadata(root: &Path, project: &Project) -> Result<String> {
    let path = root.join("python/README.md");
    let readme =
        fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut s = format!(
        "Metadata-Version: 2.1\nName: {}\nVersion: {}\nSummary: {}\nRequires-Python: {}\n",
        project.name, project.version, project.description, project.requires_python
    );
    for dep in &project.dependencies {
        s += &format!("Requires-Dist: {dep}\n");
    }
    s += "Description-Content-Type: text/markdown\n\n";
    s += &readme;
    Ok(s)
}

/// A `RECORD` line: the file's path, urlsafe-base64 SHA-256 without padding, size.
fn record_line(e: &Entry) -> String {
    let digest = Sha256::digest(&e.bytes);
    let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    format!("{},sha256={hash},{}\n", e.path, e.bytes.len())
}

/// Write `<name>-<version>-<python tag>-<platform tag>.whl` into `out_dir` from the built and
/// stripped extension `so`; returns the wheel's path.
pub fn write(root: &Path, out_dir: &Path, so: &Path, platform: &str) -> Result<PathBuf> {
    let project = project(root)?;
    let package = project.name.replace('-', "_");
    let tag = format!("{}-{platform}", python_tag(&project)?);
    let dist_info = format!("{package}-{}.dist-info", project.version);

    let mut entries = python_sources(root, &package)?;
    if !entries.iter().any(|e| e.path.ends_with("/__init__.py")) {
        bail!("python/{package}/__init__.py is missing");
    }
    entries.push(Entry {
        path: format!("{package}/_ferrolite.abi3.so"),
        bytes: fs::read(so).with_context(|| format!("reading {}", so.display()))?,
        mode: 0o755,
    });
    entries.push(Entry {
        path: format!("{dist_info}/METADATA"),
        bytes: metadata(root, &project)?.into_bytes(),
        mode: 0o644,
    });
    entries.push(Entry {
        path: format!("{dist_info}/WHEEL"),
        bytes: format!(
            "Wheel-Version: 1.0\nGenerator: ferrolite-targets\nRoot-Is-Purelib: false\nTag: {tag}\n"
        )
        .into_bytes(),
        mode: 0o644,
    });
    let mut record: String = entries.iter().map(record_line).collect();
    record += &format!("{dist_info}/RECORD,,\n");
    entries.push(Entry {
        path: format!("{dist_info}/RECORD"),
        bytes: record.into_bytes(),
        mode: 0o644,
    });

    let wheel = out_dir.join(format!("{package}-{}-{tag}.whl", project.version));
    let file = fs::File::create(&wheel).with_context(|| format!("creating {}", wheel.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    for e in &entries {
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(e.mode);
        zip.start_file(e.path.as_str(), options)?;
        zip.write_all(&e.bytes)?;
    }
    zip.finish()
        .with_context(|| format!("writing {}", wheel.display()))?;
    Ok(wheel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(requires: &str) -> Project {
        Project {
            name: "ferrolite".into(),
            version: "0.1.0".into(),
            description: "d".into(),
            requires_python: requires.into(),
            dependencies: vec![],
        }
    }

    #[test]
    fn python_tag_follows_requires_python() {
        assert_eq!(python_tag(&project(">=3.9")).unwrap(), "cp39-abi3");
        assert_eq!(python_tag(&project(">= 3.11")).unwrap(), "cp311-abi3");
        assert!(python_tag(&project("~=3.9")).is_err());
    }

    #[test]
    fn record_hash_is_pep376_form() {
        // sha256("") in urlsafe base64 without padding, as pip checks it.
        let e = Entry {
            path: "a/b.py".into(),
            bytes: vec![],
            mode: 0o644,
        };
        assert_eq!(
            record_line(&e),
            "a/b.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n"
        );
    }

    #[test]
    fn the_repository_pyproject_parses() {
        let root = crate::profile::profiles_dir()
            .parent()
            .unwrap()
            .to_path_buf();
        let p = super::project(&root).unwrap();
        assert_eq!(p.name, "ferrolite");
        assert!(python_tag(&p).is_ok());
    }
}
