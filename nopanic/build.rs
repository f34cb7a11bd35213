//! Every symbol of the shared object must be defined (`-z defs`): the panic handler's call to
//! the undefined `virtionet_nopanic_panic_reached` then fails the link if any panic path is left.
//! libc provides memcpy/memset/memcmp, which the compiler may call.
//! `NOPANIC_DIAGNOSE=1` links without `-z defs`, to look for the panic paths in the object
//! (`scripts/nopanic.sh --diagnose`).
fn main() {
    println!("cargo:rerun-if-env-changed=NOPANIC_DIAGNOSE");
    if std::env::var_os("NOPANIC_DIAGNOSE").is_none() {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,defs");
    }
    println!("cargo:rustc-link-lib=c");
}
