//! Build script of the driver package.
//!
//! On a Windows host with the WDK, `wdk-build` configures the kernel-mode link (KMDF 1.33, the
//! driver model in `[package.metadata.wdk.driver-model]`). Elsewhere there is nothing to configure:
//! the wdk crates are Windows-only dependencies and the portable code builds as an ordinary crate.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(windows)]
    {
        wdk_build::configure_wdk_binary_build()?;
    }
    println!("cargo::rerun-if-changed=build.rs");
    Ok(())
}
