//! Links the `crishim` binary as a non-PIE executable. Every pod runs a monitor from this
//! binary, and in a position-independent executable the dynamic loader must relocate its
//! read-only relocation tables (~750 KiB with wasmtime linked in) in each process, as private
//! dirty memory. At a fixed address they stay clean pages shared by all monitors.
fn main() {
    println!("cargo:rustc-link-arg-bin=crishim=-no-pie");
}
