//! `cargo target-package`: what gets copied to a board or into an Android project.

use crate::profile::{PackageKind, Profile};
use anyhow::{Context, Result};
use flate2::{write::GzEncoder, Compression};
use std::fs;
use std::path::{Path, PathBuf};

/// Files of a build to package, as produced by `cargo target-build`.
pub struct Built {
    /// The stripped device CLI, when one was linked.
    pub cli: Option<PathBuf>,
    /// The static library with the C interface (Android).
    pub staticlib: Option<PathBuf>,
    /// The shared library with the C interface (Android with the NDK).
    pub cdylib: Option<PathBuf>,
}

/// Stage the package directory and write `<dir>.tar.gz` next to it; returns the archive.
pub fn write(p: &Profile, root: &Path, out_dir: &Path, built: &Built) -> Result<PathBuf> {
    let name = format!("ferrolite-{}", p.name);
    let stage = out_dir.join(&name);
    if stage.exists() {
        fs::remove_dir_all(&stage).with_context(|| format!("clearing {}", stage.display()))?;
    }
    fs::create_dir_all(&stage)?;
    let copy = |from: &Path, to: &Path| -> Result<()> {
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(from, to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        Ok(())
    };
    copy(
        &root.join("models/efficientnet_lite0.flb"),
        &stage.join("efficientnet_lite0.flb"),
    )?;
    for entry in fs::read_dir(root.join("models/samples"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "jpg") {
            copy(
                &path,
                &stage
                    .join("samples")
                    .join(path.file_name().unwrap_or_default()),
            )?;
        }
    }
    if let Some(cli) = &built.cli {
        copy(
            cli,
            &stage.join(if p.is_android() {
                "bin/ferrolite"
            } else {
                "ferrolite"
            }),
        )?;
    }
    if p.package == PackageKind::Android {
        copy(
            &root.join("runtime/include/ferrolite.h"),
            &stage.join("include/ferrolite.h"),
        )?;
        if let Some(a) = &built.staticlib {
            copy(a, &stage.join("lib/libferrolite.a"))?;
        }
        if let (Some(so), Some(abi)) = (&built.cdylib, &p.android_abi) {
            copy(so, &stage.join("jniLibs").join(abi).join("libferrolite.so"))?;
        }
    }
    fs::write(stage.join("README.txt"), readme(p, built))?;

    let archive = out_dir.join(format!("{name}.tar.gz"));
    let file = fs::File::create(&archive)?;
    let mut tar = tar::Builder::new(GzEncoder::new(file, Compression::best()));
    tar.append_dir_all(&name, &stage)?;
    tar.into_inner()?.finish()?;
    Ok(archive)
}

fn readme(p: &Profile, built: &Built) -> String {
    let name = format!("ferrolite-{}", p.name);
    let mut s = format!(
        "Ferrolite for {desc}\n\n\
         efficientnet_lite0.flb  EfficientNet-Lite0 (ImageNet), int8 bundle\n\
         samples/                four ImageNet photos\n",
        desc = p.description
    );
    if p.package == PackageKind::Tarball {
        s += &format!(
            "ferrolite               the command-line tool (stripped)\n\n\
             Copy and run:\n\
             \x20 scp {name}.tar.gz pi@raspberrypi.local:\n\
             \x20 ssh pi@raspberrypi.local\n\
             \x20 tar xzf {name}.tar.gz && cd {name}\n\
             \x20 ./ferrolite classify --model efficientnet_lite0.flb samples/*.jpg\n\
             \x20 ./ferrolite bench efficientnet_lite0.flb --runs 50 --profile\n\
             \x20 ./ferrolite inspect efficientnet_lite0.flb   # kernels chosen for this CPU\n\n\
             Bundles for other models are made on a PC with `ferrolite convert`.\n"
        );
    } else {
        s += "include/ferrolite.h     the C interface\n\
              lib/libferrolite.a      static library (link it into your JNI library)\n";
        if built.cdylib.is_some() {
            s += "jniLibs/<abi>/          libferrolite.so, ready for app/src/main/jniLibs/\n";
        }
        if built.cli.is_some() {
            s += "bin/ferrolite           the command-line tool, for adb:\n\
                  \x20 adb push bin/ferrolite efficientnet_lite0.flb samples /data/local/tmp/\n\
                  \x20 adb shell /data/local/tmp/ferrolite bench /data/local/tmp/efficientnet_lite0.flb\n";
        }
        if built.cdylib.is_none() {
            s += "\nThis package was built without the Android NDK, so it has no shared library\n\
                  and no command-line tool: both must be linked by the NDK's clang. Set\n\
                  ANDROID_NDK_HOME and run `cargo target-package` again to get them.\n";
        }
    }
    s
}
