//! What is applied to a sandboxed child between `fork` and `exec`: a new network namespace,
//! resource limits, no capabilities, `no_new_privs`, a Landlock domain and a seccomp filter.
//!
//! Everything that allocates or can fail in interesting ways (the Landlock ruleset and its
//! rules, the BPF program) is built in the parent, before the fork; the closure that runs in the
//! child only makes system calls on values prepared for it, as `pre_exec` requires.
#![allow(unsafe_code)] // raw system calls: landlock(2), seccomp via prctl(2), unshare(2), setrlimit(2)

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// The type of `setrlimit`'s resource argument (glibc gives it a type of its own).
type Resource = libc::__rlimit_resource_t;

// ---- Landlock (include/uapi/linux/landlock.h) -----------------------------------------------

const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;

const FS_EXECUTE: u64 = 1 << 0;
const FS_WRITE_FILE: u64 = 1 << 1;
const FS_READ_FILE: u64 = 1 << 2;
const FS_READ_DIR: u64 = 1 << 3;
const FS_REMOVE_DIR: u64 = 1 << 4;
const FS_REMOVE_FILE: u64 = 1 << 5;
const FS_MAKE_CHAR: u64 = 1 << 6;
const FS_MAKE_DIR: u64 = 1 << 7;
const FS_MAKE_REG: u64 = 1 << 8;
const FS_MAKE_SOCK: u64 = 1 << 9;
const FS_MAKE_FIFO: u64 = 1 << 10;
const FS_MAKE_BLOCK: u64 = 1 << 11;
const FS_MAKE_SYM: u64 = 1 << 12;
/// ABI 2.
const FS_REFER: u64 = 1 << 13;
/// ABI 3.
const FS_TRUNCATE: u64 = 1 << 14;
/// ABI 5.
const FS_IOCTL_DEV: u64 = 1 << 15;
/// ABI 4: TCP bind and connect.
const NET_BIND_TCP: u64 = 1 << 0;
const NET_CONNECT_TCP: u64 = 1 << 1;
/// ABI 6: no connecting to abstract Unix sockets and no signals outside the domain.
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI version the kernel offers (0: none — not built in, or disabled at boot).
pub fn landlock_abi() -> u32 {
    // SAFETY: the documented version query: null attribute, size 0, a flag; no memory is passed.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v < 0 { 0 } else { v as u32 }
}

/// Every file-system access right the kernel's ABI knows.
fn fs_rights(abi: u32) -> u64 {
    let mut all = FS_EXECUTE
        | FS_WRITE_FILE
        | FS_READ_FILE
        | FS_READ_DIR
        | FS_REMOVE_DIR
        | FS_REMOVE_FILE
        | FS_MAKE_CHAR
        | FS_MAKE_DIR
        | FS_MAKE_REG
        | FS_MAKE_SOCK
        | FS_MAKE_FIFO
        | FS_MAKE_BLOCK
        | FS_MAKE_SYM;
    if abi >= 2 {
        all |= FS_REFER;
    }
    if abi >= 3 {
        all |= FS_TRUNCATE;
    }
    if abi >= 5 {
        all |= FS_IOCTL_DEV;
    }
    all
}

/// Access a path is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read files and list folders (and execute: the interpreter and its shared libraries).
    ReadExecute,
    /// Read files and list folders.
    Read,
    /// Everything inside (the scratch folder, `/dev/null`).
    ReadWrite,
}

/// A Landlock ruleset ready to be enforced in the child: only the given paths, with the given
/// access, and (ABI ≥ 4) no TCP bind or connect, (ABI ≥ 6) no signals or abstract Unix sockets
/// outside the sandbox.
pub struct Ruleset {
    fd: OwnedFd,
    /// The ABI it was built for.
    pub abi: u32,
}

impl Ruleset {
    /// Builds the ruleset; paths that do not exist are skipped (e.g. `/lib64` on some systems).
    pub fn new(abi: u32, paths: &[(&Path, Access)]) -> io::Result<Self> {
        let handled = fs_rights(abi);
        let attr = RulesetAttr {
            handled_access_fs: handled,
            handled_access_net: if abi >= 4 {
                NET_BIND_TCP | NET_CONNECT_TCP
            } else {
                0
            },
            scoped: if abi >= 6 {
                SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
            } else {
                0
            },
        };
        // Older kernels reject the fields they do not know: pass only those of the ABI.
        let size = if abi >= 6 {
            std::mem::size_of::<RulesetAttr>()
        } else if abi >= 4 {
            16
        } else {
            8
        };
        // SAFETY: `attr` is a live, initialised struct of at least `size` bytes.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &attr as *const RulesetAttr,
                size,
                0u32,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the system call returned a new file descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let read = FS_READ_FILE | FS_READ_DIR;
        for (path, access) in paths {
            let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
                continue;
            };
            // SAFETY: a NUL-terminated path; the result is checked.
            let dir = unsafe { libc::open(c_path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
            if dir < 0 {
                continue;
            }
            // SAFETY: `dir` was just opened and is owned here only.
            let dir = unsafe { OwnedFd::from_raw_fd(dir) };
            let is_dir = std::fs::metadata(path).is_ok_and(|m| m.is_dir());
            let mut allowed = match access {
                Access::Read => read,
                Access::ReadExecute => read | FS_EXECUTE,
                Access::ReadWrite => handled,
            };
            if !is_dir {
                // Rights on a file may only be those that apply to files.
                allowed &= FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV;
            }
            let rule = PathBeneathAttr {
                allowed_access: allowed & handled,
                parent_fd: dir.as_raw_fd(),
            };
            // SAFETY: `rule` is live and initialised; both descriptors are open.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_landlock_add_rule,
                    fd.as_raw_fd(),
                    LANDLOCK_RULE_PATH_BENEATH,
                    &rule as *const PathBeneathAttr,
                    0u32,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                return Err(io::Error::new(
                    e.kind(),
                    format!("landlock rule for {}: {e}", path.display()),
                ));
            }
        }
        Ok(Self { fd, abi })
    }
}

// ---- seccomp ----------------------------------------------------------------------------------

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64

const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;

/// System calls refused with `EPERM`: new processes, sockets (so no network even where no
/// network namespace can be made), io_uring (whose operations bypass seccomp), and every way to
/// reach outside the process (tracing, other processes' memory, signals to other processes,
/// namespaces, mounts, keyrings, BPF, kernel modules).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn denied_syscalls() -> Vec<libc::c_long> {
    let mut v = vec![
        libc::SYS_socket,
        libc::SYS_socketpair,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_userfaultfd,
        libc::SYS_kexec_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_kill,
        libc::SYS_tkill,
        libc::SYS_rt_sigqueueinfo,
        libc::SYS_rt_tgsigqueueinfo,
        libc::SYS_pidfd_open,
        libc::SYS_pidfd_send_signal,
        libc::SYS_pidfd_getfd,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_fsopen,
        libc::SYS_fsmount,
        libc::SYS_fsconfig,
        libc::SYS_fspick,
        libc::SYS_open_tree,
        libc::SYS_move_mount,
        libc::SYS_mount_setattr,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_acct,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_setuid,
        libc::SYS_setgid,
        libc::SYS_setreuid,
        libc::SYS_setregid,
        libc::SYS_setresuid,
        libc::SYS_setresgid,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        libc::SYS_fork,
        libc::SYS_vfork,
        libc::SYS_iopl,
        libc::SYS_ioperm,
    ]);
    v
}

/// A classic BPF program for `SECCOMP_MODE_FILTER`: the architecture must be the native one
/// (else the process is killed), `clone` is allowed only for threads (`CLONE_THREAD`), `clone3`
/// answers `ENOSYS` (its flags sit behind a pointer the filter cannot read, and C libraries fall
/// back to `clone`), the calls of [`denied_syscalls`] answer `EPERM`, the rest is allowed.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn seccomp_program() -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let stmt = |code: u16, k: u32| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code: u16, k: u32, jt: u8, jf: u8| libc::sock_filter { code, jt, jf, k };
    // struct seccomp_data { int nr; u32 arch; u64 ip; u64 args[6]; } (little endian: the low
    // half of args[0] is at offset 16).
    const OFF_NR: u32 = 0;
    const OFF_ARCH: u32 = 4;
    const OFF_ARG0_LO: u32 = 16;
    let eperm = SECCOMP_RET_ERRNO | libc::EPERM as u32;
    let enosys = SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    let mut p = vec![
        stmt(LD_W_ABS, OFF_ARCH),
        jump(JEQ_K, AUDIT_ARCH, 1, 0),
        stmt(RET_K, SECCOMP_RET_KILL_PROCESS),
        stmt(LD_W_ABS, OFF_NR),
    ];
    #[cfg(target_arch = "x86_64")]
    {
        // x32 system calls (bit 30) of the same architecture number.
        p.push(jump(JGE_K, 0x4000_0000, 0, 1));
        p.push(stmt(RET_K, eperm));
    }
    #[cfg(target_arch = "aarch64")]
    let _ = JGE_K;
    // clone: allowed with CLONE_THREAD (threads), refused otherwise (fork).
    p.push(jump(JEQ_K, libc::SYS_clone as u32, 0, 4));
    p.push(stmt(LD_W_ABS, OFF_ARG0_LO));
    p.push(jump(JSET_K, libc::CLONE_THREAD as u32, 0, 1));
    p.push(stmt(RET_K, SECCOMP_RET_ALLOW));
    p.push(stmt(RET_K, eperm));
    p.push(jump(JEQ_K, libc::SYS_clone3 as u32, 0, 1));
    p.push(stmt(RET_K, enosys));
    for nr in denied_syscalls() {
        p.push(jump(JEQ_K, nr as u32, 0, 1));
        p.push(stmt(RET_K, eperm));
    }
    p.push(stmt(RET_K, SECCOMP_RET_ALLOW));
    p
}

/// No seccomp filter on other architectures: [`crate::SandboxPolicy`] refuses to run scripts
/// there unless a weaker sandbox is allowed.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn seccomp_program() -> Vec<libc::sock_filter> {
    Vec::new()
}

// ---- the child ---------------------------------------------------------------------------------

/// Everything the child applies to itself before `exec`.
pub struct Confinement {
    /// `(resource, soft limit, hard limit)`.
    pub rlimits: Vec<(Resource, u64, u64)>,
    pub landlock: Option<Ruleset>,
    /// Empty: no filter (only when the policy allows a weaker sandbox).
    pub seccomp: Vec<libc::sock_filter>,
    /// Ask for a new network namespace (with a user namespace if a plain one is refused).
    pub new_netns: bool,
}

/// The resources [`Confinement::rlimits`] may name.
pub mod resource {
    use super::Resource;
    pub const AS: Resource = libc::RLIMIT_AS;
    pub const CPU: Resource = libc::RLIMIT_CPU;
    pub const NOFILE: Resource = libc::RLIMIT_NOFILE;
    pub const FSIZE: Resource = libc::RLIMIT_FSIZE;
    pub const CORE: Resource = libc::RLIMIT_CORE;
    pub const NPROC: Resource = libc::RLIMIT_NPROC;
}

/// The current hard limit of `resource` (a child cannot raise its hard limit without
/// privileges, so limits are clamped to it).
pub fn hard_limit(resource: Resource) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one plain struct we own.
    if unsafe { libc::getrlimit(resource, &mut limit) } == 0 {
        limit.rlim_max
    } else {
        libc::RLIM_INFINITY
    }
}

impl Confinement {
    /// Installs the confinement into `command`'s `pre_exec`.
    pub fn install(self, command: &mut Command) {
        // SAFETY: the closure runs in the forked child before exec. It only makes system calls
        // (unshare, setrlimit, prctl, capset, landlock_restrict_self, close_range) on values
        // prepared before the fork; it allocates nothing and takes no lock.
        unsafe {
            command.pre_exec(move || self.apply());
        }
    }

    fn apply(&self) -> io::Result<()> {
        let check = |r: libc::c_long| {
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        // SAFETY (whole function): plain system calls with integer arguments or pointers to
        // values owned by `self`, which outlives them.
        unsafe {
            if self.new_netns
                && libc::unshare(libc::CLONE_NEWNET) != 0
                && libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) != 0
            {
                // Not fatal: sockets are refused by the seccomp filter anyway; the parent
                // sees the missing namespace and records it.
            }
            for &(resource, soft, hard) in &self.rlimits {
                let value = libc::rlimit {
                    rlim_cur: soft,
                    rlim_max: hard,
                };
                if libc::setrlimit(resource, &value) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            // No capabilities survive exec, even as root: empty bounding and ambient sets.
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            );
            for cap in 0..64 {
                libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
            }
            check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) as libc::c_long)?;
            if let Some(ruleset) = &self.landlock {
                check(libc::syscall(
                    libc::SYS_landlock_restrict_self,
                    ruleset.fd.as_raw_fd(),
                    0u32,
                ))?;
            }
            // Only stdin, stdout and stderr reach the new program.
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            if !self.seccomp.is_empty() {
                let program = libc::sock_fprog {
                    len: self.seccomp.len() as u16,
                    filter: self.seccomp.as_ptr() as *mut libc::sock_filter,
                };
                check(libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &program as *const libc::sock_fprog,
                    0,
                    0,
                ) as libc::c_long)?;
            }
        }
        Ok(())
    }
}

/// The inode of a process's network namespace (`/proc/<pid>/ns/net`), to tell whether a child
/// got a namespace of its own.
pub fn netns_of(pid: Option<u32>) -> Option<String> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/ns/net"),
        None => "/proc/self/ns/net".to_string(),
    };
    std::fs::read_link(path)
        .ok()
        .map(|p| p.display().to_string())
}
