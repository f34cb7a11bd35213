//! Starting and stopping QEMU: `halt.bin` made at run time, guest RAM in a shared memory-backend
//! file mapped here, `-accel kvm` when it works else `tcg`, the parent-death signal so a crashed
//! test never leaves QEMU behind, and cleanup of the RAM file and sockets on every exit path.

use std::fs;
use std::io::Read;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::qtest::{Qtest, QtestError};
use crate::dma::DmaArena;

/// The accelerator QEMU runs with (the vCPU is halted either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// KVM.
    Kvm,
    /// TCG.
    Tcg,
}

impl Accel {
    fn name(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Tcg => "tcg",
        }
    }
}

/// How to start QEMU.
#[derive(Debug, Clone)]
pub struct QemuOptions {
    /// `None`: KVM when `/dev/kvm` works, else TCG.
    pub accel: Option<Accel>,
    /// Guest RAM in MiB.
    pub ram_mb: usize,
    /// The device's MAC address.
    pub mac: [u8; 6],
    /// Extra `virtio-net-pci` properties, e.g. `mrg_rxbuf=off,packed=on`.
    pub device_props: String,
    /// Use a tap device (with `vnet_hdr=on`) of this name instead of the datagram socket, with
    /// QEMU started inside network namespace `netns`.
    pub tap: Option<(String, String)>,
    /// Queue pairs of the tap backend (`queues=N`; the tap must be multi-queue when above 1).
    pub tap_queues: u16,
}

impl Default for QemuOptions {
    fn default() -> Self {
        Self {
            accel: None,
            ram_mb: 256,
            mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
            device_props: String::new(),
            tap: None,
            tap_queues: 1,
        }
    }
}

/// Why QEMU could not be used.
#[derive(Debug)]
pub enum QemuError {
    /// `qemu-system-x86_64` is not installed.
    NotInstalled,
    /// QEMU exited or never connected; its stderr.
    Start(String),
    /// The qtest protocol failed.
    Qtest(QtestError),
    /// A file or socket operation failed.
    Io(String),
}

impl std::fmt::Display for QemuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotInstalled => {
                f.write_str("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
            }
            Self::Start(e) => write!(f, "QEMU did not start: {e}"),
            Self::Qtest(e) => e.fmt(f),
            Self::Io(e) => write!(f, "QEMU harness: {e}"),
        }
    }
}

impl std::error::Error for QemuError {}

impl From<QtestError> for QemuError {
    fn from(e: QtestError) -> Self {
        Self::Qtest(e)
    }
}

fn io(e: impl std::fmt::Display) -> QemuError {
    QemuError::Io(e.to_string())
}

/// A running QEMU with its guest RAM mapped and a unix datagram socket as the network peer.
pub struct Qemu {
    child: Child,
    dir: PathBuf,
    mem_path: PathBuf,
    ram: NonNull<u8>,
    ram_len: usize,
    qt: Mutex<Qtest>,
    arena: DmaArena,
    /// The host end of the network: frames the guest sends arrive here; frames sent to
    /// [`Qemu::send_to_guest`] are received by the device.
    pub host: UnixDatagram,
    qemu_sock: PathBuf,
    qmp_sock: PathBuf,
    /// The accelerator in use.
    pub accel: Accel,
    /// Guest physical address of the MSI-X message words (4 bytes per vector).
    pub msix_target: u64,
}

impl std::fmt::Debug for Qemu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qemu")
            .field("pid", &self.child.id())
            .field("accel", &self.accel)
            .finish()
    }
}

// SAFETY: the mapping is owned by this value and unmapped in Drop; everything else is Send.
unsafe impl Send for Qemu {}
// SAFETY: shared access is to the qtest connection (behind a mutex), the arena (behind its own
// mutex), the host socket (usable from several threads), and guest-RAM words read and written
// volatile one at a time.
unsafe impl Sync for Qemu {}

static INSTANCE: AtomicU32 = AtomicU32::new(0);

fn kvm_usable() -> bool {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// Guest RAM below this address is left alone (VGA, BIOS and PAM windows).
const RAM_START: u64 = 1 << 20;

impl Qemu {
    /// Starts QEMU (trying KVM first when `accel` is `None`).
    pub fn start(opts: &QemuOptions) -> Result<Self, QemuError> {
        if Command::new("qemu-system-x86_64")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            return Err(QemuError::NotInstalled);
        }
        match opts.accel {
            Some(a) => Self::start_with(opts, a),
            None if kvm_usable() => {
                Self::start_with(opts, Accel::Kvm).or_else(|_| Self::start_with(opts, Accel::Tcg))
            }
            None => Self::start_with(opts, Accel::Tcg),
        }
    }

    fn start_with(opts: &QemuOptions, accel: Accel) -> Result<Self, QemuError> {
        let n = INSTANCE.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("vnet-qemu-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(io)?;
        let mem_path = PathBuf::from(format!("/dev/shm/vnet-qemu-{}-{n}", std::process::id()));
        let _ = fs::remove_file(&mem_path);
        let halt = dir.join("halt.bin");
        fs::write(&halt, vec![0xf4u8; 64 * 1024]).map_err(io)?;
        let qt_sock = dir.join("qt.sock");
        let qemu_sock = dir.join("qemu-net.sock");
        let host_sock = dir.join("host-net.sock");
        let qmp_sock = dir.join("qmp.sock");
        let listener = UnixListener::bind(&qt_sock).map_err(io)?;
        listener.set_nonblocking(true).map_err(io)?;
        let host = UnixDatagram::bind(&host_sock).map_err(io)?;
        let mac = opts
            .mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        let mut device = format!("virtio-net-pci,netdev=n0,disable-legacy=on,mac={mac},romfile=");
        if !opts.device_props.is_empty() {
            device.push(',');
            device.push_str(&opts.device_props);
        }
        let stderr_path = dir.join("qemu.stderr");
        let stderr = fs::File::create(&stderr_path).map_err(io)?;
        let netdev = match &opts.tap {
            Some((ifname, _)) => {
                let mut t =
                    format!("tap,id=n0,ifname={ifname},script=no,downscript=no,vnet_hdr=on");
                if opts.tap_queues > 1 {
                    t.push_str(&format!(",queues={}", opts.tap_queues));
                }
                t
            }
            None => format!(
                "dgram,id=n0,local.type=unix,local.path={},remote.type=unix,remote.path={}",
                qemu_sock.display(),
                host_sock.display()
            ),
        };
        let mut cmd = match &opts.tap {
            // Inside the tap's namespace: `ip netns exec` enters it and execs QEMU in place.
            Some((_, ns)) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "qemu-system-x86_64"]);
                c
            }
            None => Command::new("qemu-system-x86_64"),
        };
        // The interrupt controller in QEMU, not in KVM: a PCI INTx line then passes the IOAPIC
        // model, whose inputs qtest intercepts (`irq_intercept_in ioapic`); with KVM's in-kernel
        // irqchip the line goes straight to the kernel and qtest never reports it.
        cmd.args([
            "-machine",
            "q35,kernel-irqchip=off",
            "-accel",
            accel.name(),
            "-m",
            &format!("{}M", opts.ram_mb),
        ])
        .args(["-smp", "1", "-display", "none", "-nodefaults"])
        .arg("-bios")
        .arg(&halt)
        .arg("-object")
        .arg(format!(
            "memory-backend-file,id=mem,size={}M,mem-path={},share=on",
            opts.ram_mb,
            mem_path.display()
        ))
        .args(["-machine", "memory-backend=mem"])
        .args(["-netdev", &netdev])
        .args(["-device", &device])
        .arg("-qtest")
        .arg(format!("unix:{}", qt_sock.display()))
        .args(["-qtest-log", "none"])
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", qmp_sock.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
        let die_with_parent = || {
            // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag of the calling (child) process.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            Ok(())
        };
        // SAFETY: the hook runs in the forked child before exec and only calls prctl, which is
        // async-signal-safe.
        unsafe { cmd.pre_exec(die_with_parent) };
        let mut child = cmd.spawn().map_err(|e| QemuError::Start(e.to_string()))?;
        let fail = |child: &mut Child, what: String| {
            let _ = child.kill();
            let _ = child.wait();
            let mut err = String::new();
            let _ = fs::File::open(&stderr_path).and_then(|mut f| f.read_to_string(&mut err));
            let _ = fs::remove_dir_all(&dir);
            let _ = fs::remove_file(&mem_path);
            QemuError::Start(format!("{what} (accel {}): {}", accel.name(), err.trim()))
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(_) if Instant::now() < deadline => {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Err(fail(&mut child, format!("exited with {status}")));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(fail(&mut child, format!("no qtest connection: {e}"))),
            }
        };
        stream.set_nonblocking(false).map_err(io)?;
        let mut qt = Qtest::new(stream, Duration::from_secs(10))?;
        // QEMU answers only once its main loop runs: after this the RAM file exists.
        qt.cmd("endianness")?;
        let ram_len = opts.ram_mb << 20;
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&mem_path)
            .map_err(|e| fail(&mut child, format!("RAM file: {e}")))?;
        // SAFETY: mapping a regular file of ram_len bytes shared; the fd may be closed after.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ram_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                std::os::fd::AsRawFd::as_raw_fd(&file),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(fail(&mut child, "mmap of guest RAM failed".into()));
        }
        let ram =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| QemuError::Io("null mapping".into()))?;
        // The last page holds the MSI-X message words; the arena covers [1 MiB, end − 4 KiB).
        let msix_target = ram_len as u64 - 4096;
        let base = NonNull::new(ram.as_ptr().wrapping_add(RAM_START as usize))
            .ok_or_else(|| QemuError::Io("base".into()))?;
        // SAFETY: the mapping is valid for ram_len bytes until Drop unmaps it (after the arena is
        // gone: fields drop in declaration order, and Drop runs first); the arena covers a part
        // of it that nothing else in this process uses.
        let arena = unsafe { DmaArena::new(base, ram_len - RAM_START as usize - 4096, RAM_START) };
        Ok(Self {
            child,
            dir,
            mem_path,
            ram,
            ram_len,
            qt: Mutex::new(qt),
            arena,
            host,
            qemu_sock,
            qmp_sock,
            accel,
            msix_target,
        })
    }

    /// The DMA arena over guest RAM (device address = guest physical address).
    pub fn arena(&self) -> &DmaArena {
        &self.arena
    }

    /// Runs `f` with the qtest connection.
    pub fn qtest<T>(&self, f: impl FnOnce(&mut Qtest) -> T) -> T {
        let mut q = self.qt.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut q)
    }

    /// Reads a 32-bit word of guest RAM (MSI-X message words).
    pub fn ram_u32(&self, gpa: u64) -> u32 {
        if gpa as usize + 4 > self.ram_len {
            return 0;
        }
        let p = self.ram.as_ptr().wrapping_add(gpa as usize).cast::<u32>();
        // SAFETY: in bounds of the mapping (checked), 4-aligned by the callers' layout; QEMU may
        // write it concurrently, so the read is volatile.
        unsafe { p.read_volatile() }
    }

    /// Reads a 32-bit word of guest RAM and clears it, atomically (QEMU's MSI-X writes land in
    /// such words: a write after the swap is seen by the next one).
    pub fn take_ram_u32(&self, gpa: u64) -> u32 {
        if gpa as usize + 4 > self.ram_len || !gpa.is_multiple_of(4) {
            return 0;
        }
        let p = self.ram.as_ptr().wrapping_add(gpa as usize).cast::<u32>();
        // SAFETY: in bounds and 4-aligned (checked); the word is shared with QEMU, so it is
        // accessed atomically.
        let a = unsafe { std::sync::atomic::AtomicU32::from_ptr(p) };
        a.swap(0, std::sync::atomic::Ordering::AcqRel)
    }

    /// Writes a 32-bit word of guest RAM.
    pub fn set_ram_u32(&self, gpa: u64, v: u32) {
        if gpa as usize + 4 > self.ram_len {
            return;
        }
        let p = self.ram.as_ptr().wrapping_add(gpa as usize).cast::<u32>();
        // SAFETY: as in ram_u32.
        unsafe { p.write_volatile(v) }
    }

    /// Sends a frame into the device's receive path.
    pub fn send_to_guest(&self, frame: &[u8]) -> std::io::Result<usize> {
        self.host.send_to(frame, &self.qemu_sock)
    }

    /// A QMP command (e.g. `{"execute":"set_link","arguments":{"name":"n0","up":false}}`);
    /// returns QEMU's answer line.
    pub fn qmp(&self, json: &str) -> Result<String, QemuError> {
        use std::io::{BufRead, BufReader, Write};
        let s = std::os::unix::net::UnixStream::connect(&self.qmp_sock).map_err(io)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(io)?;
        let mut r = BufReader::new(s.try_clone().map_err(io)?);
        let mut w = s;
        let mut line = String::new();
        r.read_line(&mut line).map_err(io)?; // greeting
        w.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")
            .map_err(io)?;
        line.clear();
        r.read_line(&mut line).map_err(io)?;
        w.write_all(json.as_bytes()).map_err(io)?;
        w.write_all(b"\n").map_err(io)?;
        loop {
            line.clear();
            if r.read_line(&mut line).map_err(io)? == 0 {
                return Err(QemuError::Io("QMP closed".into()));
            }
            if line.contains("\"return\"") || line.contains("\"error\"") {
                return Ok(line.trim().to_string());
            }
        }
    }

    /// Kills QEMU now (a crash, as seen by the driver).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.kill();
        // SAFETY: unmapping the mapping made in start_with, once; the arena (which points into
        // it) is not used after this (it drops right after, touching only its own bookkeeping).
        unsafe { libc::munmap(self.ram.as_ptr().cast(), self.ram_len) };
        let _ = fs::remove_file(&self.mem_path);
        let _ = fs::remove_dir_all(&self.dir);
    }
}
