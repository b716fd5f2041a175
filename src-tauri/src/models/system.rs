//! What this machine has: RAM, CPU cores and, where it is cheap to learn, a GPU's memory.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemInfo {
    pub total_ram_bytes: u64,
    /// Free plus reclaimable (page cache) memory right now.
    pub available_ram_bytes: u64,
    pub cpu_cores: usize,
    /// `None` when no GPU back end can be asked cheaply (see [`detect_gpu`]).
    pub gpu: Option<GpuInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuInfo {
    pub name: String,
    pub total_vram_bytes: u64,
    pub free_vram_bytes: Option<u64>,
}

impl SystemInfo {
    /// Reads RAM and cores now. `gpu` is left to the caller: pass [`detect_gpu`]'s answer only
    /// when the app was built with a GPU back end that could use it.
    pub fn detect(gpu: Option<GpuInfo>) -> Self {
        let mut sys = sysinfo::System::new();
        sys.refresh_memory();
        let cpu_cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            total_ram_bytes: sys.total_memory(),
            available_ram_bytes: sys.available_memory(),
            cpu_cores,
            gpu,
        }
    }
}

/// The first NVIDIA GPU, from `nvidia-smi` (a sub-second call that exists wherever the CUDA driver
/// does). `None` without the tool or on any parse problem: it is a hint for the recommendation,
/// never a reason to fail.
pub fn detect_gpu() -> Option<GpuInfo> {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.total,memory.free",
            "--format=csv,noheader,nounits",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout))
}

/// Parses `name, total MiB, free MiB` lines; the first GPU wins.
pub fn parse_nvidia_smi(text: &str) -> Option<GpuInfo> {
    let line = text.lines().find(|l| !l.trim().is_empty())?;
    let mut fields = line.rsplitn(3, ',').map(str::trim);
    let free: u64 = fields.next()?.parse().ok()?;
    let total: u64 = fields.next()?.parse().ok()?;
    let name = fields.next()?.to_string();
    const MIB: u64 = 1024 * 1024;
    Some(GpuInfo {
        name,
        total_vram_bytes: total * MIB,
        free_vram_bytes: Some(free * MIB),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nvidia_smi_csv() {
        let gpu = parse_nvidia_smi("NVIDIA H200, 143771, 143000\nNVIDIA H200, 1, 1\n").unwrap();
        assert_eq!(gpu.name, "NVIDIA H200");
        assert_eq!(gpu.total_vram_bytes, 143771 * 1024 * 1024);
        assert_eq!(gpu.free_vram_bytes, Some(143000 * 1024 * 1024));
        // A comma inside the name must not shift the numbers.
        assert_eq!(
            parse_nvidia_smi("Odd, GPU, 10, 5").unwrap().name,
            "Odd, GPU"
        );
        assert_eq!(parse_nvidia_smi(""), None);
        assert_eq!(parse_nvidia_smi("NVIDIA, [N/A], [N/A]"), None);
    }

    #[test]
    fn detects_this_machine() {
        let sys = SystemInfo::detect(None);
        assert!(sys.total_ram_bytes > 0);
        assert!(sys.available_ram_bytes <= sys.total_ram_bytes);
        assert!(sys.cpu_cores >= 1);
    }
}
