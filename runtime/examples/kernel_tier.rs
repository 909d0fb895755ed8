//! Prints the CPU features the runtime detects and the kernels it would run, the first
//! thing `cargo target-test` shows for a device profile (under qemu or on the device).

use ferrolite_runtime::kernels::{self, CpuFeatures, Isa};

fn main() {
    let cpu = CpuFeatures::detect();
    let flags = [
        ("avx2", cpu.avx2),
        ("fma", cpu.fma),
        ("avx512f", cpu.avx512f),
        ("avx512vnni", cpu.avx512vnni),
        ("neon", cpu.neon),
        ("dotprod", cpu.dotprod),
        ("fp16", cpu.fp16),
    ];
    let found: Vec<&str> = flags.iter().filter(|f| f.1).map(|f| f.0).collect();
    println!(
        "cpu features: {} ({})",
        if found.is_empty() {
            "none".to_string()
        } else {
            found.join(" ")
        },
        std::env::consts::ARCH
    );
    match kernels::from_env() {
        Ok(k) => {
            // Features that select further kernels inside the tier.
            let extras: &[(&str, bool)] = match k.isa {
                Isa::Neon => &[("dotprod", cpu.dotprod), ("fp16", cpu.fp16)],
                Isa::Avx512 => &[("vnni", cpu.avx512vnni)],
                _ => &[],
            };
            let extras: String = extras
                .iter()
                .filter(|e| e.1)
                .map(|e| format!(" + {}", e.0))
                .collect();
            println!("kernel tier: {}{extras}", k.isa.name());
            for (slot, name) in k.names() {
                println!("  {slot:<20} {name}");
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
