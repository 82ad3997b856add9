//! Compiles the C shim for the variadic `execl*` and exports exactly the intercepted
//! symbols through a linker version script.

fn main() {
    println!("cargo:rerun-if-changed=src/shim.c");
    println!("cargo:rerun-if-changed=rampart.map");
    cc::Build::new()
        .file("src/shim.c")
        .flag_if_supported("-fno-stack-protector")
        .warnings(true)
        .extra_warnings(true)
        .cargo_metadata(false)
        .compile("rampart_shim");
    let out = std::env::var("OUT_DIR").unwrap_or_default();
    println!("cargo:rustc-link-search=native={out}");
    // Whole-archive: nothing in Rust references execl*, yet they must be linked in.
    println!("cargo:rustc-link-lib=static:+whole-archive=rampart_shim");
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/rampart.map");
    // No C start files (crti/crtbeginS/crtendS/crtn): the library has no C++ or TM
    // clones, no `.init`/`.fini` and no destructors, and those files' only contribution
    // was four weak imports (`__gmon_start__`, `_ITM_*`, `__cxa_finalize`) that the
    // dynamic linker searched every object for in every process. The constructor is in
    // `.init_array`, which ld.so runs without them.
    println!("cargo:rustc-cdylib-link-arg=-nostartfiles");
}
