//! CPU feature detection (once per process) and ISA tier selection with the
//! `FERROLITE_ISA` override.

use crate::error::{Error, Result};
use std::sync::OnceLock;

/// Features relevant to the kernels, detected at run time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    pub avx2: bool,
    pub fma: bool,
    pub avx512f: bool,
    pub avx512bw: bool,
    pub avx512vnni: bool,
    pub f16c: bool,
    pub neon: bool,
    pub dotprod: bool,
    pub fp16: bool,
    /// The CPU executes 512-bit operations as two 256-bit halves (AMD Zen 4): 512-bit
    /// registers bring no extra FLOPs there, and the 256-bit GEMM tiles measure faster.
    pub split_512: bool,
}

impl CpuFeatures {
    /// The features of this CPU, detected on first call and cached.
    pub fn detect() -> CpuFeatures {
        static CELL: OnceLock<CpuFeatures> = OnceLock::new();
        *CELL.get_or_init(detect_now)
    }

    /// Whether this CPU can run kernels of tier `isa`.
    pub fn supports(&self, isa: Isa) -> bool {
        match isa {
            Isa::Scalar => true,
            Isa::Avx2 => self.avx2 && self.fma,
            Isa::Avx512 => self.avx512f && self.avx512bw,
            Isa::Neon => self.neon,
        }
    }

    /// The highest tier this CPU supports.
    pub fn best_isa(&self) -> Isa {
        [Isa::Avx512, Isa::Avx2, Isa::Neon]
            .into_iter()
            .find(|&i| self.supports(i))
            .unwrap_or(Isa::Scalar)
    }
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
fn detect_now() -> CpuFeatures {
    CpuFeatures {
        avx2: is_x86_feature_detected!("avx2"),
        fma: is_x86_feature_detected!("fma"),
        avx512f: is_x86_feature_detected!("avx512f"),
        avx512bw: is_x86_feature_detected!("avx512bw"),
        avx512vnni: is_x86_feature_detected!("avx512vnni"),
        f16c: is_x86_feature_detected!("f16c"),
        split_512: is_zen4(),
        ..CpuFeatures::default()
    }
}

/// AMD family 19h (Zen 3 / Zen 4; only Zen 4 has AVX-512, double-pumped).
#[cfg(target_arch = "x86_64")]
fn is_zen4() -> bool {
    let (vendor, sig) = (
        core::arch::x86_64::__cpuid(0),
        core::arch::x86_64::__cpuid(1).eax,
    );
    let amd = [vendor.ebx, vendor.edx, vendor.ecx]
        .iter()
        .flat_map(|r| r.to_le_bytes())
        .eq(*b"AuthenticAMD");
    let family = ((sig >> 8) & 0xF) + ((sig >> 20) & 0xFF);
    amd && family == 0x19
}

#[cfg(target_arch = "x86")]
fn is_zen4() -> bool {
    false
}

#[cfg(target_arch = "aarch64")]
fn detect_now() -> CpuFeatures {
    CpuFeatures {
        neon: std::arch::is_aarch64_feature_detected!("neon"),
        dotprod: std::arch::is_aarch64_feature_detected!("dotprod"),
        fp16: std::arch::is_aarch64_feature_detected!("fp16"),
        ..CpuFeatures::default()
    }
}

/// 32-bit ARM: NEON is a compile-time property of the target (`+neon`), and the NEON
/// kernels exist only where `build.rs` enabled them.
#[cfg(target_arch = "arm")]
fn detect_now() -> CpuFeatures {
    CpuFeatures {
        neon: cfg!(ferrolite_arm_neon),
        ..CpuFeatures::default()
    }
}

#[cfg(not(any(
    target_arch = "x86",
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "arm"
)))]
fn detect_now() -> CpuFeatures {
    CpuFeatures::default()
}

/// Kernel tier: the instruction set a kernel set targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    Scalar,
    Avx2,
    Avx512,
    Neon,
}

impl Isa {
    /// Lower-case name, as accepted by `FERROLITE_ISA`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// Parse a tier name (`scalar|avx2|avx512|neon`).
    pub fn parse(s: &str) -> Result<Isa> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" => Ok(Isa::Scalar),
            "avx2" => Ok(Isa::Avx2),
            "avx512" => Ok(Isa::Avx512),
            "neon" => Ok(Isa::Neon),
            other => Err(Error::Unsupported(format!(
                "FERROLITE_ISA={other:?} is not one of scalar, avx2, avx512, neon"
            ))),
        }
    }
}

/// Choose a tier from an optional override value and the detected features.
pub fn resolve_isa(requested: Option<&str>, cpu: &CpuFeatures) -> Result<Isa> {
    match requested {
        None => Ok(cpu.best_isa()),
        Some(s) => {
            let isa = Isa::parse(s)?;
            if cpu.supports(isa) {
                Ok(isa)
            } else {
                Err(Error::Unsupported(format!(
                    "FERROLITE_ISA={} requested but this CPU does not support it (detected {cpu:?})",
                    isa.name()
                )))
            }
        }
    }
}

/// The tier to use: `FERROLITE_ISA` if set (must be valid and supported), else the best.
pub fn select_isa() -> Result<Isa> {
    let var = std::env::var("FERROLITE_ISA").ok();
    resolve_isa(var.as_deref(), &CpuFeatures::detect())
}
