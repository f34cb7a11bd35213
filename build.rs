//! Build script of the driver package.
//!
//! On a Windows host with the WDK, `wdk-build` configures the kernel-mode link (KMDF 1.33, the
//! driver model in `[package.metadata.wdk.driver-model]`), and this script adds NetAdapterCx's
//! `netadaptercxstub.lib` — which defines `NetFunctions`, `NetDriverGlobals` and the class
//! bind record for NetAdapterCx 2.2 — since wdk-build knows nothing of NetAdapterCx.
//! Elsewhere there is nothing to configure: the wdk crates are Windows-only dependencies and
//! the portable code builds as an ordinary crate.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(windows)]
    {
        wdk_build::configure_wdk_binary_build()?;
        netadaptercx::link()?;
    }
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=VIRTIONET_NETCX_LIB_DIR");
    println!("cargo::rerun-if-env-changed=WDKContentRoot");
    Ok(())
}

/// Finding the NetAdapterCx 2.2 stub library. The WDK keeps it under
/// `Lib\<version>\km\<arch>\` in a folder named for the NetAdapterCx version; the exact folder
/// names were not verified here (no WDK on the build machine this was written on), so the
/// script searches for the file in a `2.2` folder and can be pointed at it with
/// `VIRTIONET_NETCX_LIB_DIR`.
#[cfg(windows)]
mod netadaptercx {
    use std::path::{Path, PathBuf};

    const LIB: &str = "netadaptercxstub.lib";
    const VERSION_DIR: &str = "2.2";

    fn find(dir: &Path, depth: u32, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && depth > 0 {
                find(&p, depth - 1, found);
            } else if p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().eq_ignore_ascii_case(LIB))
            {
                found.push(p);
            }
        }
    }

    pub fn link() -> Result<(), Box<dyn std::error::Error>> {
        if let Ok(dir) = std::env::var("VIRTIONET_NETCX_LIB_DIR") {
            println!("cargo::rustc-link-search=native={dir}");
            println!("cargo::rustc-link-lib=static=netadaptercxstub");
            return Ok(());
        }
        let root = std::env::var("WDKContentRoot")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(r"C:\Program Files (x86)\Windows Kits\10"));
        let arch = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
            Ok("aarch64") => "arm64",
            _ => "x64",
        };
        let mut found = Vec::new();
        find(&root.join("Lib"), 8, &mut found);
        // Newest WDK first; only this architecture's kernel-mode 2.2 stub.
        found.sort();
        found.reverse();
        let pick = found.into_iter().find(|p| {
            let s = p.to_string_lossy().to_ascii_lowercase();
            s.contains(&format!(r"\km\{arch}\"))
                && p.parent()
                    .and_then(Path::file_name)
                    .is_some_and(|d| d.to_string_lossy() == VERSION_DIR)
        });
        let Some(lib) = pick else {
            return Err(format!(
                "{LIB} for NetAdapterCx {VERSION_DIR} ({arch}) not found under {}; set \
                 VIRTIONET_NETCX_LIB_DIR to its folder",
                root.display()
            )
            .into());
        };
        if let Some(dir) = lib.parent() {
            println!("cargo::rustc-link-search=native={}", dir.display());
        }
        println!("cargo::rustc-link-lib=static=netadaptercxstub");
        Ok(())
    }
}
