//! Reading an exec's arguments out of the calling task: `process_vm_readv`, falling back
//! to `/proc/<pid>/mem` (both need ptrace read access: the supervisor is an ancestor and,
//! as child subreaper, stays one, which is what Yama's default scope asks for).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Longest single string the kernel accepts in an exec (MAX_ARG_STRLEN, 32 pages).
const MAX_STRING: usize = 32 * 4096;
/// Upper bound on everything read for one exec; the kernel's own limit is a quarter of the
/// stack rlimit (2 MiB by default).
const MAX_TOTAL: usize = 16 << 20;
const PAGE: u64 = 4096;

#[derive(Debug)]
pub enum ReadError {
    /// The task is gone (killed while waiting).
    Gone,
    /// A pointer the task passed is not mapped: the exec would fail with EFAULT anyway.
    Fault,
    /// The descriptor of an `execveat` is not open: the exec would fail with EBADF anyway.
    BadFd,
    /// The program's lookup fails in the task's own view with this errno: the exec fails
    /// with it (it never runs unchecked).
    Exec(i32),
    /// We may not look at the program the exec names: refused like unreadable memory.
    Unseeable(String),
    /// The task's memory cannot be read by us (non-dumpable, Yama, no permission), or the
    /// arguments exceed any exec's limits.
    Unreadable(String),
}

pub struct Task {
    pid: i32,
    mem: Option<File>,
    budget: usize,
}

impl Task {
    pub fn new(pid: u32) -> Task {
        Task {
            pid: pid as i32,
            mem: None,
            budget: MAX_TOTAL,
        }
    }

    /// Reads up to `buf.len()` bytes at `addr`, which must not cross a page boundary.
    fn read_page(&mut self, addr: u64, buf: &mut [u8]) -> Result<usize, ReadError> {
        if self.mem.is_none() {
            let local = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            let remote = libc::iovec {
                iov_base: addr as *mut libc::c_void,
                iov_len: buf.len(),
            };
            // SAFETY: `local` describes our own writable buffer; the kernel validates the
            // remote range against the other process's mappings.
            let n = unsafe {
                libc::process_vm_readv(self.pid, &raw const local, 1, &raw const remote, 1, 0)
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::ESRCH) => return Err(ReadError::Gone),
                Some(libc::EFAULT) => return Err(ReadError::Fault),
                // EPERM (no ptrace access), ENOSYS (kernel without CONFIG_CROSS_MEMORY_ATTACH)
                // and anything else: try /proc/<pid>/mem, which has its own rules.
                _ => self.open_mem(&err)?,
            }
        }
        let Some(mem) = &self.mem else {
            return Err(ReadError::Unreadable(
                "no way to read its memory".to_owned(),
            ));
        };
        match mem.read_at(buf, addr) {
            Ok(n) => Ok(n),
            Err(e) if e.raw_os_error() == Some(libc::EIO) => Err(ReadError::Fault),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Err(ReadError::Gone),
            Err(e) => Err(ReadError::Unreadable(format!(
                "reading /proc/{}/mem: {e}",
                self.pid
            ))),
        }
    }

    fn open_mem(&mut self, first: &io::Error) -> Result<(), ReadError> {
        match File::open(format!("/proc/{}/mem", self.pid)) {
            Ok(f) => {
                self.mem = Some(f);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ReadError::Gone),
            Err(e) => Err(ReadError::Unreadable(format!(
                "process_vm_readv: {first}; /proc/{}/mem: {e}",
                self.pid
            ))),
        }
    }

    fn charge(&mut self, n: usize) -> Result<(), ReadError> {
        self.budget = self.budget.checked_sub(n).ok_or_else(|| {
            ReadError::Unreadable(format!("its arguments exceed {MAX_TOTAL} bytes"))
        })?;
        Ok(())
    }

    /// The NUL-terminated string at `addr`.
    pub fn string(&mut self, addr: u64) -> Result<Vec<u8>, ReadError> {
        if addr == 0 {
            return Err(ReadError::Fault);
        }
        let mut out = Vec::new();
        let mut at = addr;
        let mut page = [0u8; PAGE as usize];
        loop {
            let len = (PAGE - at % PAGE) as usize;
            let chunk = page.get_mut(..len).ok_or(ReadError::Fault)?;
            let n = self.read_page(at, chunk)?;
            let got = chunk.get(..n).ok_or(ReadError::Fault)?;
            if let Some(end) = got.iter().position(|&b| b == 0) {
                out.extend_from_slice(got.get(..end).unwrap_or_default());
                self.charge(end + 1)?;
                return Ok(out);
            }
            if n == 0 {
                return Err(ReadError::Fault);
            }
            out.extend_from_slice(got);
            self.charge(n)?;
            if out.len() > MAX_STRING {
                return Err(ReadError::Unreadable(format!(
                    "an argument is longer than {MAX_STRING} bytes"
                )));
            }
            at += n as u64;
        }
    }

    /// The NULL-terminated pointer array at `addr` (a NULL `addr` is an empty array, as
    /// Linux treats `execve(path, NULL, ...)`), each element read as a string.
    pub fn strings(&mut self, addr: u64) -> Result<Vec<Vec<u8>>, ReadError> {
        let mut out = Vec::new();
        if addr == 0 {
            return Ok(out);
        }
        let mut at = addr;
        let mut page = [0u8; PAGE as usize];
        let mut pointers = Vec::new();
        'read: loop {
            let len = (PAGE - at % PAGE) as usize;
            let chunk = page.get_mut(..len).ok_or(ReadError::Fault)?;
            let n = self.read_page(at, chunk)?;
            let got = chunk.get(..n - n % 8).ok_or(ReadError::Fault)?;
            if got.is_empty() {
                return Err(ReadError::Fault);
            }
            for word in got.chunks_exact(8) {
                let mut b = [0u8; 8];
                b.copy_from_slice(word);
                let p = u64::from_ne_bytes(b);
                if p == 0 {
                    break 'read;
                }
                self.charge(8)?;
                pointers.push(p);
            }
            at += got.len() as u64;
        }
        for p in pointers {
            out.push(self.string(p)?);
        }
        Ok(out)
    }
}
