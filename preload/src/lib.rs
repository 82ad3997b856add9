//! `librampart.so`: the LD_PRELOAD library that asks the Rampart policy server before any
//! program is started.
//!
//! It intercepts the 13 libc entry points that start a program (`execve execv execvp
//! execvpe execl execlp execle fexecve execveat system popen posix_spawn posix_spawnp`),
//! sends one preflight request per command and either calls the real libc function or
//! fails with `EPERM`. It is not a sandbox: static binaries, raw syscalls and processes
//! that drop `LD_PRELOAD` on purpose are out of its reach (that is `rampart supervise`).
//!
//! The exec path runs inside `vfork` children and `fork` children of multi-threaded
//! parents, so everything reachable from an entry point follows the same rules: no heap,
//! no locks, no std, no panics, no `dlsym`, timeouts by `poll`. See `README.md`.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
// Unit tests build without the exported entry points, which use most of the code.
#![cfg_attr(test, allow(dead_code))]
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::undocumented_unsafe_blocks
)]

mod check;
mod config;
mod env;
mod http;
mod json;
mod path;
mod repeat;
mod sink;
mod sys;
mod syscall;
#[cfg(test)]
mod testgen;
mod unchecked;

#[cfg(not(test))]
mod exports;

/// With `panic = "abort"` and no std there is nothing to unwind into; every code path is
/// written so it cannot panic, and if one ever did, aborting is the only safe answer
/// inside a `vfork` child.
#[cfg(not(test))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    syscall::abort()
}
