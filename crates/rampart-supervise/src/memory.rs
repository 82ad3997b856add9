//! Reading an exec's arguments out of the calling task: `process_vm_readv`, falling back
//! to `/proc/<pid>/mem` (both need ptrace read access: the supervisor is an ancestor and,
//! as child subreaper, stays one, which is what Yama's default scope asks for).
//!
//! Every exec is read this way (twice when allowed), so the reads are batched: one
//! `process_vm_readv` copies the pages holding the path and the argv array, and one more
//! the pages of the argv strings not among them (usually none: `argv[0]` is often the
//! path, and the strings tend to share a page). What a batch copied is only a cache: each
//! string is still read through [`Task::string`]'s page walk, so a fault, a missing NUL
//! or an overlong argument is found exactly as without it.

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

/// The most iovecs one `process_vm_readv` takes (the kernel's UIO_MAXIOV).
const MAX_IOV: usize = 1024;

pub struct Task {
    pid: i32,
    mem: Option<File>,
    budget: usize,
    /// Bytes already copied from the task, from an address to the end of its page: the
    /// start address, and where they are in `copied`; sorted by address, one per page.
    cached: Vec<(u64, usize, usize)>,
    copied: Vec<u8>,
}

impl Task {
    pub fn new(pid: u32) -> Task {
        Task {
            pid: pid as i32,
            mem: None,
            budget: MAX_TOTAL,
            cached: Vec::new(),
            copied: Vec::new(),
        }
    }

    /// The path and argv of an exec (`argv` 0 is an empty array, as Linux treats it).
    pub fn exec_args(
        &mut self,
        path: u64,
        argv: u64,
    ) -> Result<(Vec<u8>, Vec<Vec<u8>>), ReadError> {
        self.prefetch(&[path, argv]);
        let path = self.string(path)?;
        let argv = self.strings(argv)?;
        Ok((path, argv))
    }

    /// The cached bytes from `addr` on (to the end of its page, or fewer if the copy was
    /// cut short by an unmapped page).
    fn cached_at(&self, addr: u64) -> Option<&[u8]> {
        let i = self.cached.partition_point(|&(start, _, _)| start <= addr);
        let &(start, at, len) = self.cached.get(i.checked_sub(1)?)?;
        let skip = usize::try_from(addr - start).ok()?;
        if skip >= len {
            return None;
        }
        self.copied.get(at + skip..at + len)
    }

    /// Copies, in as few `process_vm_readv` calls as the kernel allows, each page that
    /// holds one of `addrs` (from the lowest such address to the page's end) and is not
    /// cached yet. Failures are ignored: the reads that follow meet them again and say why.
    fn prefetch(&mut self, addrs: &[u64]) {
        if self.mem.is_some() {
            return;
        }
        let mut want: Vec<u64> = addrs
            .iter()
            .copied()
            .filter(|&a| a != 0 && self.cached_at(a).is_none())
            .collect();
        want.sort_unstable();
        want.dedup_by(|later, first| *later / PAGE == *first / PAGE);
        for batch in want.chunks(MAX_IOV) {
            let lens: Vec<usize> = batch.iter().map(|&a| (PAGE - a % PAGE) as usize).collect();
            let base = self.copied.len();
            self.copied.resize(base + lens.iter().sum::<usize>(), 0);
            let mut local = Vec::with_capacity(batch.len());
            let mut remote = Vec::with_capacity(batch.len());
            let mut rest = self.copied.get_mut(base..).unwrap_or_default();
            for (&addr, &len) in batch.iter().zip(&lens) {
                let (this, after) = rest.split_at_mut(len.min(rest.len()));
                local.push(libc::iovec {
                    iov_base: this.as_mut_ptr().cast(),
                    iov_len: this.len(),
                });
                remote.push(libc::iovec {
                    iov_base: addr as *mut libc::c_void,
                    iov_len: len,
                });
                rest = after;
            }
            // SAFETY: each local iovec describes a distinct part of `copied`, which is not
            // touched until the call returns; the kernel validates the remote ranges
            // against the other process's mappings. Both arrays hold `batch.len()` entries.
            let n = unsafe {
                libc::process_vm_readv(
                    self.pid,
                    local.as_ptr(),
                    local.len() as libc::c_ulong,
                    remote.as_ptr(),
                    remote.len() as libc::c_ulong,
                    0,
                )
            };
            // The copy stops at the first range that faults: everything before it is whole.
            let mut left = usize::try_from(n).unwrap_or(0);
            let mut at = base;
            for (&addr, &len) in batch.iter().zip(&lens) {
                let got = len.min(left);
                if got == 0 {
                    break;
                }
                self.cached.push((addr, at, got));
                at += len;
                left -= got;
            }
            self.copied.truncate(at);
        }
        self.cached.sort_unstable_by_key(|&(start, _, _)| start);
    }

    /// Reads up to `buf.len()` bytes at `addr`, which must not cross a page boundary.
    fn read_page(&mut self, addr: u64, buf: &mut [u8]) -> Result<usize, ReadError> {
        if let Some(cached) = self.cached_at(addr) {
            let n = cached.len().min(buf.len());
            buf.get_mut(..n)
                .ok_or(ReadError::Fault)?
                .copy_from_slice(cached.get(..n).ok_or(ReadError::Fault)?);
            return Ok(n);
        }
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
        self.prefetch(&pointers);
        for p in pointers {
            out.push(self.string(p)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    //! The batched reader against our own memory (`process_vm_readv` on ourselves), laid
    //! out the ways an exec's arguments can be: on one page, across pages, next to an
    //! unmapped page, more pages than one call takes.

    use super::*;

    /// Pages of our own, the last `inaccessible` ones with PROT_NONE; unmapped on drop.
    struct Pages {
        base: *mut u8,
        len: usize,
    }

    impl Pages {
        fn new(count: usize, inaccessible: usize) -> Pages {
            let len = count * PAGE as usize;
            // SAFETY: a fresh anonymous private mapping, owned by the returned value.
            let base = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert_ne!(base, libc::MAP_FAILED);
            let base = base.cast::<u8>();
            if inaccessible > 0 {
                let off = (count - inaccessible) * PAGE as usize;
                // SAFETY: the range lies inside the mapping made above.
                let rc = unsafe {
                    libc::mprotect(
                        base.add(off).cast(),
                        inaccessible * PAGE as usize,
                        libc::PROT_NONE,
                    )
                };
                assert_eq!(rc, 0);
            }
            Pages { base, len }
        }

        fn addr(&self, offset: usize) -> u64 {
            self.base as u64 + offset as u64
        }

        /// Writes `bytes` at `offset` (which must be in a writable page).
        fn put(&self, offset: usize, bytes: &[u8]) {
            assert!(offset + bytes.len() <= self.len);
            // SAFETY: the range is inside the mapping and writable.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base.add(offset), bytes.len())
            };
        }

        fn put_pointers(&self, offset: usize, pointers: &[u64]) {
            let bytes: Vec<u8> = pointers.iter().flat_map(|p| p.to_ne_bytes()).collect();
            self.put(offset, &bytes);
        }
    }

    impl Drop for Pages {
        fn drop(&mut self) {
            // SAFETY: unmaps exactly the mapping made in `new`.
            unsafe { libc::munmap(self.base.cast(), self.len) };
        }
    }

    fn me() -> Task {
        Task::new(std::process::id())
    }

    const P: usize = PAGE as usize;

    #[test]
    fn path_and_argv_on_one_page_and_argv0_the_path() {
        let pages = Pages::new(1, 0);
        pages.put(0, b"/bin/true\0-v\0\0");
        pages.put_pointers(64, &[pages.addr(0), pages.addr(10), pages.addr(13), 0]);
        let (path, argv) = me().exec_args(pages.addr(0), pages.addr(64)).unwrap();
        assert_eq!(path, b"/bin/true");
        assert_eq!(
            argv,
            vec![b"/bin/true".to_vec(), b"-v".to_vec(), Vec::new()]
        );
    }

    #[test]
    fn strings_and_the_array_may_cross_pages() {
        let pages = Pages::new(4, 0);
        // The path runs from the end of page 0 into page 1; the array straddles pages 1
        // and 2; one argument lies on page 3.
        pages.put(P - 3, b"/usr/bin/env\0");
        pages.put(3 * P + 100, b"third\0");
        let array = 2 * P - 16;
        pages.put_pointers(
            array,
            &[
                pages.addr(P - 3),
                pages.addr(P + 50),
                pages.addr(3 * P + 100),
                0,
            ],
        );
        pages.put(P + 50, b"x\0");
        let (path, argv) = me()
            .exec_args(pages.addr(P - 3), pages.addr(array))
            .unwrap();
        assert_eq!(path, b"/usr/bin/env");
        assert_eq!(
            argv,
            vec![b"/usr/bin/env".to_vec(), b"x".to_vec(), b"third".to_vec()]
        );
    }

    #[test]
    fn a_null_argv_is_empty_and_a_null_path_faults() {
        let pages = Pages::new(1, 0);
        pages.put(0, b"/bin/true\0");
        assert_eq!(
            me().exec_args(pages.addr(0), 0).unwrap().1,
            Vec::<Vec<u8>>::new()
        );
        assert!(matches!(me().exec_args(0, 0), Err(ReadError::Fault)));
    }

    #[test]
    fn a_string_running_into_an_unmapped_page_faults() {
        let pages = Pages::new(2, 1);
        // No NUL before the inaccessible page: the batch copies part of it, the walk
        // must still report the fault.
        pages.put(P - 4, b"abcd");
        pages.put_pointers(0, &[pages.addr(P - 4), 0]);
        assert!(matches!(
            me().exec_args(pages.addr(P - 4), pages.addr(0)),
            Err(ReadError::Fault)
        ));
        // An argument pointing into it, after a good path.
        pages.put(8, b"ok\0");
        pages.put_pointers(16, &[pages.addr(8), pages.addr(P + 8), 0]);
        assert!(matches!(
            me().exec_args(pages.addr(8), pages.addr(16)),
            Err(ReadError::Fault)
        ));
        // An array running into it without its NULL.
        pages.put_pointers(P - 16, &[pages.addr(8), pages.addr(8)]);
        assert!(matches!(
            me().exec_args(pages.addr(8), pages.addr(P - 16)),
            Err(ReadError::Fault)
        ));
    }

    #[test]
    fn more_pages_than_one_call_takes() {
        // One argument per page, more pages than one process_vm_readv may name.
        let count = MAX_IOV + 300;
        let pages = Pages::new(count + 4, 0);
        let array = count * P;
        let mut pointers = Vec::new();
        for i in 0..count {
            let offset = i * P + i % 97;
            pages.put(offset, format!("arg{i}\0").as_bytes());
            pointers.push(pages.addr(offset));
        }
        pointers.push(0);
        pages.put_pointers(array, &pointers);
        let (path, argv) = me().exec_args(pointers[0], pages.addr(array)).unwrap();
        assert_eq!(path, b"arg0");
        assert_eq!(argv.len(), count);
        for (i, a) in argv.iter().enumerate() {
            assert_eq!(a, format!("arg{i}").as_bytes());
        }
    }

    #[test]
    fn the_size_limits_still_hold() {
        // An argument well past MAX_STRING (spread over pages, NUL at the end).
        let len = MAX_STRING + 2 * P;
        let pages = Pages::new(len / P + 2, 0);
        pages.put(0, &vec![b'a'; len]);
        pages.put(len, b"\0");
        let array = (len / P + 1) * P;
        pages.put_pointers(array, &[pages.addr(0), 0]);
        let got = me().exec_args(pages.addr(0), pages.addr(array));
        let Err(ReadError::Unreadable(why)) = got else {
            panic!(
                "not refused: {:?}",
                got.map(|(path, argv)| (path.len(), argv.len()))
            );
        };
        assert_eq!(
            why,
            format!("an argument is longer than {MAX_STRING} bytes")
        );
    }
}
